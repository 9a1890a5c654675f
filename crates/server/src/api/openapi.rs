//! The OpenAPI 3.1 document (`GET /v1/openapi.json`): paths and schemas come from the handlers'
//! `#[utoipa::path]` attributes as they are registered; this adds what every operation shares
//! (bearer authentication and the error answers any request can get).

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;

/// The document's fixed parts.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "convrec",
        description = "Conversation recording service: accounts, conversations, calls and \
            layers, recordings, their history, downloads and webhooks. Errors are \
            `{code, message, details}`. Authenticate with `Authorization: Bearer <API key or \
            participant token>`; what each caller may do is in docs/security.md."
    ),
    components(schemas(ErrorBody)),
    security(("bearer" = [])),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts"), (name = "configuration"), (name = "apikeys"), (name = "templates"),
        (name = "conversations"), (name = "interactions"), (name = "media"),
        (name = "recordings"), (name = "history"), (name = "webhooks")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (global or account admin) or a participant token",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds to every operation the error answers it can give without saying so itself.
pub fn finish(mut doc: Document) -> Document {
    for item in doc.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_common_errors(operation);
        }
    }
    doc
}

fn add_common_errors(operation: &mut Operation) {
    let mut common = vec![
        (
            "400",
            "Malformed path, query or body: the message names the field",
        ),
        ("401", "No valid credentials (missing, unknown or revoked)"),
        (
            "404",
            "No such object, or one the caller may not see (never told apart)",
        ),
        ("500", "Internal error; the server log has the cause"),
        (
            "503",
            "`DATABASE_UNAVAILABLE` or `STORAGE_UNAVAILABLE`: the metadata database or the object store cannot be reached just now; try again after `Retry-After` seconds",
        ),
    ];
    if operation.request_body.is_some() {
        common.push(("413", "The body is too large"));
        common.push(("415", "The body's Content-Type is not the one required"));
        common.push((
            "422",
            "`INVALID_BODY`: the body does not fit its schema (wrong types, unknown fields)",
        ));
    }
    for (status, description) in common {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                            .build(),
                    )
                    .build()
                    .into()
            });
    }
}
