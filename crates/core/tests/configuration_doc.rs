//! `docs/configuration.md` holds the property table exactly as the code defines it, so the two
//! cannot drift. On a mismatch the test prints the table to paste.

#[test]
fn the_configuration_document_holds_the_code_s_property_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let document = std::fs::read_to_string(&path).expect("docs/configuration.md exists");
    let table = convrec_core::config::markdown_table();
    assert!(
        document.contains(&table),
        "docs/configuration.md does not hold the property table; it should contain:\n\n{table}"
    );
}
