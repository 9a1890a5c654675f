//! The metadata store on a real SQLite file and a real PostgreSQL database (every test runs
//! on both): migrations, tokens, single-use entry points, and deletion that takes everything
//! of a conversation with it.

use convrec_store::metadata::{
    EntryPointRefusal, FileUpload, Metadata, MetadataError, NodeLease, Role, Route, Table,
    UploadedPart,
};
use convrec_testkit::TestDatabase;

async fn open(database: &TestDatabase) -> Metadata {
    Metadata::open(&database.url())
        .await
        .expect("open the database")
}

#[tokio::test]
async fn the_schema_is_created_once_and_survives_reopening() {
    for dir in TestDatabase::each() {
        let account = {
            let db = open(&dir).await;
            db.ping().await.unwrap();
            db.create_account("Bank", 1).await.unwrap()
        };
        let db = open(&dir).await;
        let conversation = db
            .create_conversation(&account, None, "mortgage advice", 2)
            .await
            .unwrap();
        assert!(conversation.starts_with("conv_"));
        let err = db
            .create_conversation("acc_missing", None, "x", 3)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                MetadataError::NotFound {
                    what: "account",
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[tokio::test]
async fn participant_tokens_are_stored_hashed_and_find_their_participant() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let account = db.create_account("Bank", 1).await.unwrap();
        let conversation = db
            .create_conversation(&account, None, "topic", 1)
            .await
            .unwrap();
        let (agent, token) = db
            .add_participant(&conversation, "Ada", Role::AssignedAgent, 2)
            .await
            .unwrap();
        assert_eq!(
            format!("{token:?}"),
            "Secret(…)",
            "a secret never shows in logs"
        );
        assert_eq!(
            db.participant_by_token(token.expose()).await.unwrap(),
            Some(agent)
        );
        assert_eq!(db.participant_by_token("not-a-token").await.unwrap(), None);
        let stored = dir.raw_contents();
        let needle = token.expose().as_bytes();
        assert!(
            !stored.windows(needle.len()).any(|w| w == needle),
            "the token itself is not stored"
        );
        assert!(matches!(
            db.add_participant("conv_missing", "x", Role::Visitor, 3)
                .await,
            Err(MetadataError::NotFound { .. })
        ));
        assert_eq!("VISITOR".parse::<Role>(), Ok(Role::Visitor));
        assert!(
            "ADMIN"
                .parse::<Role>()
                .unwrap_err()
                .contains("allowed: ASSIGNED_AGENT")
        );
    }
}

#[tokio::test]
async fn entry_points_are_single_use_and_expire() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let account = db.create_account("Bank", 0).await.unwrap();
        let conversation = db
            .create_conversation(&account, None, "topic", 0)
            .await
            .unwrap();
        let recording = db
            .create_recording(
                &conversation,
                "AUDIO_VIDEO",
                "RAW_TRACKS",
                "AUTOMATIC",
                "n1",
                0,
            )
            .await
            .unwrap();
        let token = db
            .create_entry_point(&recording, 1, 30_000, 1_000)
            .await
            .unwrap();
        let redeemed = db
            .redeem_entry_point(token.expose(), 2_000)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (redeemed.recording_id.as_str(), redeemed.attempt),
            (recording.as_str(), 1)
        );
        assert_eq!(
            db.redeem_entry_point(token.expose(), 2_001).await.unwrap(),
            Err(EntryPointRefusal::Used)
        );
        assert_eq!(
            db.redeem_entry_point("guess", 2_001).await.unwrap(),
            Err(EntryPointRefusal::Unknown)
        );
        let late = db
            .create_entry_point(&recording, 2, 30_000, 1_000)
            .await
            .unwrap();
        assert_eq!(
            db.redeem_entry_point(late.expose(), 31_000).await.unwrap(),
            Err(EntryPointRefusal::Expired)
        );
        // Valid until its last millisecond.
        let edge = db
            .create_entry_point(&recording, 3, 30_000, 1_000)
            .await
            .unwrap();
        assert!(
            db.redeem_entry_point(edge.expose(), 30_999)
                .await
                .unwrap()
                .is_ok()
        );
        // A new attempt retires the unused entry point of the one before.
        let attempt4 = db
            .create_entry_point(&recording, 4, 30_000, 40_000)
            .await
            .unwrap();
        let attempt5 = db
            .create_entry_point(&recording, 5, 30_000, 41_000)
            .await
            .unwrap();
        assert_eq!(
            db.redeem_entry_point(attempt4.expose(), 41_001)
                .await
                .unwrap(),
            Err(EntryPointRefusal::Expired)
        );
        assert_eq!(
            db.redeem_entry_point(attempt5.expose(), 41_001)
                .await
                .unwrap()
                .unwrap()
                .attempt,
            5
        );
    }
}

#[tokio::test]
async fn a_conversation_has_one_running_recording_at_a_time() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let account = db.create_account("Bank", 0).await.unwrap();
        let conversation = db
            .create_conversation(&account, None, "topic", 0)
            .await
            .unwrap();
        let first = db
            .create_recording(
                &conversation,
                "AUDIO_VIDEO",
                "RAW_TRACKS",
                "AUTOMATIC",
                "n1",
                0,
            )
            .await
            .unwrap();
        let err = db
            .create_recording(
                &conversation,
                "AUDIO_VIDEO",
                "RAW_TRACKS",
                "MANUAL",
                "n1",
                1,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, MetadataError::Conflict(_)), "{err}");
        assert!(err.to_string().contains("still running"), "{err}");
        db.end_recording(&first, "NORMAL", 2).await.unwrap();
        db.create_recording(
            &conversation,
            "AUDIO_VIDEO",
            "RAW_TRACKS",
            "MANUAL",
            "n1",
            3,
        )
        .await
        .unwrap();
        assert!(matches!(
            db.end_recording(&first, "NORMAL", 4).await,
            Err(MetadataError::NotFound { .. })
        ));
    }
}

/// The per-account queue of running recordings: a recording counts those of its account that
/// are running and older than it (by creation, then id), never other accounts' or ended ones.
#[tokio::test]
async fn running_recordings_are_counted_per_account_oldest_first() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let (bank, insurer) = (
            db.create_account("Bank", 0).await.unwrap(),
            db.create_account("Insurer", 0).await.unwrap(),
        );
        let mut recordings = Vec::new();
        for (account, at) in [(&bank, 10), (&bank, 20), (&insurer, 5), (&bank, 30)] {
            let conversation = db
                .create_conversation(account, None, "topic", 0)
                .await
                .unwrap();
            recordings.push(
                db.create_recording(&conversation, "AUDIO", "RAW_TRACKS", "AUTOMATIC", "n1", at)
                    .await
                    .unwrap(),
            );
        }
        let ahead = |n: usize| db.running_recordings_ahead_of(&recordings[n]);
        assert_eq!(ahead(0).await.unwrap(), 0, "the oldest runs first");
        assert_eq!(ahead(1).await.unwrap(), 1);
        assert_eq!(ahead(2).await.unwrap(), 0, "another account's queue");
        assert_eq!(ahead(3).await.unwrap(), 2);
        db.end_recording(&recordings[0], "NORMAL", 40)
            .await
            .unwrap();
        assert_eq!(
            ahead(3).await.unwrap(),
            1,
            "an ended recording leaves the queue"
        );
        assert_eq!(ahead(1).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn deleting_a_conversation_deletes_what_belongs_to_it() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let account = db.create_account("Bank", 0).await.unwrap();
        let keep = db
            .create_conversation(&account, None, "keep", 0)
            .await
            .unwrap();
        let delete = db
            .create_conversation(&account, None, "delete", 0)
            .await
            .unwrap();
        for conversation in [&keep, &delete] {
            db.add_participant(conversation, "Ada", Role::AssignedAgent, 0)
                .await
                .unwrap();
            let recording = db
                .create_recording(conversation, "AUDIO", "RAW_TRACKS", "MANUAL", "n1", 0)
                .await
                .unwrap();
            db.create_entry_point(&recording, 1, 1000, 0).await.unwrap();
        }
        db.delete_conversation(&delete).await.unwrap();
        assert_eq!(db.count(Table::Participants).await.unwrap(), 1);
        assert_eq!(db.count(Table::Recordings).await.unwrap(), 1);
        assert_eq!(db.count(Table::EntryPoints).await.unwrap(), 1);
        assert!(matches!(
            db.delete_conversation(&delete).await,
            Err(MetadataError::NotFound { .. })
        ));
    }
}

/// Two dispatchers (two nodes on one database) claiming due webhook messages at once never get
/// the same message; a claim that is not followed by an attempt ends with its lease, and the
/// message is due again (at-least-once); a node that restarts frees its own claims at once and
/// no one else's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_of_webhook_messages_never_overlap_and_leases_end() {
    for dir in TestDatabase::each() {
        let (node_a, node_b) = (open(&dir).await, open(&dir).await);
        let account = node_a.create_account("Bank", 1).await.unwrap();
        let webhook = node_a
            .create_webhook(&account, "http://receiver", "whsec_x", &["*".to_owned()], 1)
            .await
            .unwrap();
        let mut queued = std::collections::BTreeSet::new();
        for n in 0..60 {
            queued.insert(
                node_a
                    .enqueue_webhook_message(&webhook, "conversation.x", "{}", 10 + n)
                    .await
                    .unwrap(),
            );
        }
        let now = 1_000;
        let claim = |node: Metadata, name: &'static str| async move {
            let mut claimed = Vec::new();
            loop {
                let batch = node
                    .claim_due_webhook_messages(name, now, 60_000, 7)
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return claimed;
                }
                claimed.extend(batch.into_iter().map(|m| m.id));
            }
        };
        let (a, b) = tokio::join!(
            tokio::spawn(claim(node_a.clone(), "a")),
            tokio::spawn(claim(node_b.clone(), "b"))
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let all: std::collections::BTreeSet<String> = a.iter().chain(&b).cloned().collect();
        assert_eq!(a.len() + b.len(), 60, "each message claimed once");
        assert_eq!(all, queued);
        // Nothing is due while the leases run.
        assert!(
            node_b
                .claim_due_webhook_messages("b", now + 59_999, 60_000, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Node a restarts: its claims are due at once, b's are not.
        let released = node_a.release_webhook_claims("a", now + 5).await.unwrap();
        assert_eq!(released, a.len() as u64);
        let again = node_b
            .claim_due_webhook_messages("b", now + 5, 60_000, 100)
            .await
            .unwrap();
        let again: std::collections::BTreeSet<String> = again.into_iter().map(|m| m.id).collect();
        assert_eq!(again, a.iter().cloned().collect());
        // All of it is due when the leases end.
        assert_eq!(
            node_b
                .claim_due_webhook_messages("b", now + 60_005, 60_000, 100)
                .await
                .unwrap()
                .len(),
            60
        );
    }
}

/// A file's multipart upload is kept with its parts in order until it is closed; opening a new
/// upload for the file replaces the old one and its parts; a part of a replaced upload is not
/// kept; each node finds its own.
#[tokio::test]
async fn file_uploads_keep_their_parts_until_closed() {
    for dir in TestDatabase::each() {
        let db = open(&dir).await;
        let upload = |file: u32, node: &str, id: &str| FileUpload {
            recording_id: "rec_1".into(),
            file,
            node_id: node.into(),
            object_key: format!("recordings/rec_1/{file:03}.mp4"),
            upload_id: id.into(),
            part_size: 5 << 20,
            parts: Vec::new(),
        };
        assert_eq!(db.file_upload("rec_1", 0).await.unwrap(), None);
        db.open_file_upload(&upload(0, "a", "u1"), 1).await.unwrap();
        db.open_file_upload(&upload(1, "b", "u2"), 1).await.unwrap();
        let part = |etag: &str, end: u64| UploadedPart {
            content_id: etag.to_owned(),
            end,
        };
        for (number, etag, end) in [(1, "e1", 11), (0, "e0", 5), (2, "e2", 17)] {
            db.add_file_upload_part("rec_1", 0, "u1", number, &part(etag, end))
                .await
                .unwrap();
        }
        // Stored again (a retry after the answer was lost): the last answer counts.
        db.add_file_upload_part("rec_1", 0, "u1", 2, &part("e2b", 18))
            .await
            .unwrap();
        let found = db.file_upload("rec_1", 0).await.unwrap().unwrap();
        assert_eq!(
            found.parts,
            [part("e0", 5), part("e1", 11), part("e2b", 18)]
        );
        assert_eq!(found.part_size, 5 << 20);
        let of_a = db.file_uploads_of_node("a").await.unwrap();
        assert_eq!(of_a.len(), 1);
        assert_eq!(of_a[0], found);
        // The store lost u1: a new upload starts over; late parts of u1 are not kept.
        db.open_file_upload(&upload(0, "a", "u3"), 2).await.unwrap();
        db.add_file_upload_part("rec_1", 0, "u1", 3, &part("late", 30))
            .await
            .unwrap();
        db.add_file_upload_part("rec_1", 0, "u3", 0, &part("f0", 6))
            .await
            .unwrap();
        let found = db.file_upload("rec_1", 0).await.unwrap().unwrap();
        assert_eq!(
            (found.upload_id.as_str(), found.parts),
            ("u3", vec![part("f0", 6)])
        );
        db.close_file_upload("rec_1", 0).await.unwrap();
        assert_eq!(db.file_upload("rec_1", 0).await.unwrap(), None);
        assert!(db.file_uploads_of_node("a").await.unwrap().is_empty());
        assert_eq!(db.file_uploads_of_node("b").await.unwrap().len(), 1);
    }
}

/// Nodes sharing a database: the first node to serve a conversation hosts it and the others
/// route to it; a node whose lease ran out is lost, and only one node may take it over; the
/// lost node's renewal then fails; its recordings move to the node that took over.
#[tokio::test]
async fn nodes_hold_leases_host_conversations_and_are_taken_over_once() {
    for dir in TestDatabase::each() {
        let (a, b) = (open(&dir).await, open(&dir).await);
        let lease = 10_000;
        let epoch_a = a.register_node("a", "http://a", 0, lease).await.unwrap();
        let epoch_b = b.register_node("b", "http://b", 0, lease).await.unwrap();
        let account = a.create_account("Bank", 1).await.unwrap();
        let conversation = a.create_conversation(&account, None, "x", 1).await.unwrap();
        assert_eq!(
            a.conversation_route(&conversation, "a", 1).await.unwrap(),
            Route::Here
        );
        let to_a = Route::Node {
            node_id: "a".into(),
            url: "http://a".into(),
        };
        assert_eq!(
            b.conversation_route(&conversation, "b", 1).await.unwrap(),
            to_a
        );
        let recording = a
            .create_recording(&conversation, "AUDIO", "RAW_TRACKS", "MANUAL", "a", 2)
            .await
            .unwrap();
        let token = a
            .create_entry_point(&recording, 1, 60_000, 2)
            .await
            .unwrap();
        assert_eq!(
            b.entry_point_route(token.expose(), "b", 3).await.unwrap(),
            to_a
        );
        assert_eq!(
            b.entry_point_route("unknown", "b", 3).await.unwrap(),
            Route::Here
        );
        // A unknown conversation is served here (and answered 404 there).
        assert_eq!(
            b.conversation_route("conv_none", "b", 1).await.unwrap(),
            Route::Here
        );
        // b renews; a stops renewing.
        assert!(
            b.renew_node_lease("b", epoch_b, 9_000, lease)
                .await
                .unwrap()
        );
        assert!(b.lost_nodes(9_999).await.unwrap().is_empty());
        let now = 10_001;
        assert_eq!(
            b.conversation_route(&conversation, "b", now).await.unwrap(),
            Route::Lost {
                node_id: "a".into()
            }
        );
        let lost = b.lost_nodes(now).await.unwrap();
        assert_eq!(
            lost,
            [NodeLease {
                node_id: "a".into(),
                epoch: epoch_a
            }]
        );
        // Two nodes race to take a over: one wins.
        let (first, second) = tokio::join!(
            b.take_over_node(&lost[0], now),
            a.take_over_node(&lost[0], now)
        );
        assert!(first.unwrap() ^ second.unwrap());
        assert!(!a.renew_node_lease("a", epoch_a, now, lease).await.unwrap());
        assert_eq!(a.unfinished_recordings("a").await.unwrap().len(), 1);
        assert!(b.move_recording(&recording, "a", "b").await.unwrap());
        assert!(!a.move_recording(&recording, "a", "b").await.unwrap());
        assert!(a.unfinished_recordings("a").await.unwrap().is_empty());
        assert_eq!(b.unfinished_recordings("b").await.unwrap().len(), 1);
        // Nothing of it reached the object store, so b cannot finish it: a, which holds its
        // spool, takes it back when it starts again; once a part is stored, it cannot.
        assert!(a.take_back_recording(&recording, "a").await.unwrap());
        assert!(
            !a.take_back_recording(&recording, "a").await.unwrap(),
            "a's already"
        );
        assert_eq!(a.unfinished_recordings("a").await.unwrap().len(), 1);
        assert!(a.move_recording(&recording, "a", "b").await.unwrap());
        let upload = FileUpload {
            recording_id: recording.clone(),
            file: 0,
            node_id: "a".into(),
            object_key: "k".into(),
            upload_id: "u".into(),
            part_size: 5 << 20,
            parts: Vec::new(),
        };
        a.open_file_upload(&upload, now).await.unwrap();
        assert!(
            a.take_back_recording(&recording, "a").await.unwrap(),
            "an upload, but no part yet"
        );
        assert!(a.move_recording(&recording, "a", "b").await.unwrap());
        a.add_file_upload_part(
            &recording,
            0,
            "u",
            0,
            &UploadedPart {
                content_id: "e".into(),
                end: 5 << 20,
            },
        )
        .await
        .unwrap();
        assert!(
            !a.take_back_recording(&recording, "a").await.unwrap(),
            "a part is stored"
        );
        assert_eq!(b.unfinished_recordings("b").await.unwrap().len(), 1);
        // Taking a over ends the calls of what it hosted, and no other conversation's.
        a.create_interaction("call_a", &conversation, "CALL", "AUDIO", now)
            .await
            .unwrap();
        let loose = a
            .create_conversation(&account, None, "z", now)
            .await
            .unwrap();
        a.create_interaction("call_loose", &loose, "CALL", "AUDIO", now)
            .await
            .unwrap();
        assert_eq!(b.end_open_interactions("a", now).await.unwrap(), 1);
        let open = |c: Vec<convrec_store::metadata::Interaction>| {
            c.iter().filter(|i| i.ended_at_ms.is_none()).count()
        };
        assert_eq!(open(b.interactions(&conversation).await.unwrap()), 0);
        assert_eq!(open(b.interactions(&loose).await.unwrap()), 1);
        // A restarting node also ends what nobody hosts (left open before nodes were kept).
        assert_eq!(
            b.end_open_interactions_after_restart("b", now)
                .await
                .unwrap(),
            1
        );
        assert_eq!(open(b.interactions(&loose).await.unwrap()), 0);
        // Freed: the next node to serve the conversation hosts it, and a has nothing left.
        assert_eq!(
            b.conversation_route(&conversation, "b", now).await.unwrap(),
            Route::Here
        );
        assert!(b.lost_nodes(now).await.unwrap().is_empty());
        // a comes back under a new epoch and leaves; what it hosted is free again.
        let epoch_a2 = a.register_node("a", "http://a", now, lease).await.unwrap();
        assert!(epoch_a2 > epoch_a);
        let other = a
            .create_conversation(&account, None, "y", now)
            .await
            .unwrap();
        assert_eq!(
            a.conversation_route(&other, "a", now).await.unwrap(),
            Route::Here
        );
        a.leave_node("a", epoch_a2).await.unwrap();
        assert_eq!(
            b.conversation_route(&other, "b", now).await.unwrap(),
            Route::Here
        );
    }
}
