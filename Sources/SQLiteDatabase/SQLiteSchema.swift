import Foundation
import GRDB
import MailStore

/// The embedded store's database shape: numbered schema migrations, applied at start. The version lives in `PRAGMA user_version`; a database
/// newer than this binary is refused rather than misread.
public enum SQLiteSchema {
    public static let migrations: [String] = [
        // 1: the foundation
        """
        CREATE TABLE domain(
          id INTEGER PRIMARY KEY,
          name TEXT NOT NULL UNIQUE,
          created REAL NOT NULL);
        CREATE TABLE account(
          id INTEGER PRIMARY KEY,
          domain_id INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
          localpart TEXT NOT NULL,
          password TEXT NOT NULL,
          created REAL NOT NULL,
          UNIQUE(domain_id, localpart));
        -- localpart '' is the domain's catch-all; targets are newline-separated addresses.
        CREATE TABLE alias(
          id INTEGER PRIMARY KEY,
          domain_id INTEGER NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
          localpart TEXT NOT NULL,
          targets TEXT NOT NULL,
          UNIQUE(domain_id, localpart));
        CREATE TABLE mailbox(
          id INTEGER PRIMARY KEY,
          account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
          name TEXT NOT NULL,
          special_use TEXT,
          uidvalidity INTEGER NOT NULL,
          uidnext INTEGER NOT NULL DEFAULT 1,
          highestmodseq INTEGER NOT NULL DEFAULT 1,
          subscribed INTEGER NOT NULL DEFAULT 1,
          UNIQUE(account_id, name));
        -- One row per stored message, however many mailboxes hold it (refcount counts them); its content moved to
        -- message_content in migration 15.
        CREATE TABLE message(
          id INTEGER PRIMARY KEY,
          size INTEGER NOT NULL,
          blob_key TEXT,
          content BLOB,
          received REAL NOT NULL,
          envelope TEXT NOT NULL,
          refcount INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE mailbox_message(
          mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
          uid INTEGER NOT NULL,
          message_id INTEGER NOT NULL REFERENCES message(id),
          modseq INTEGER NOT NULL,
          flags INTEGER NOT NULL DEFAULT 0,
          keywords TEXT NOT NULL DEFAULT '',
          internal_date REAL NOT NULL,
          PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
        CREATE INDEX mailbox_message_modseq ON mailbox_message(mailbox_id, modseq);
        CREATE INDEX mailbox_message_message ON mailbox_message(message_id);
        -- Expunged UIDs with the modseq of their expunge, for QRESYNC VANISHED (RFC 7162 §3.2.10).
        CREATE TABLE expunged(
          mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
          uid INTEGER NOT NULL,
          modseq INTEGER NOT NULL,
          PRIMARY KEY(mailbox_id, uid)) WITHOUT ROWID;
        CREATE TRIGGER mailbox_message_ref AFTER INSERT ON mailbox_message BEGIN
          UPDATE message SET refcount = refcount + 1 WHERE id = NEW.message_id; END;
        CREATE TRIGGER mailbox_message_unref AFTER DELETE ON mailbox_message BEGIN
          UPDATE message SET refcount = refcount - 1 WHERE id = OLD.message_id; END;
        """,
        // 2: IMAP subscriptions (by name: a subscription may name a mailbox that does not exist, RFC 9051 §6.3.7)
        """
        CREATE TABLE subscription(
          account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
          name TEXT NOT NULL,
          PRIMARY KEY(account_id, name)) WITHOUT ROWID;
        INSERT INTO subscription(account_id, name) SELECT account_id, name FROM mailbox;
        """,
        // 3: the outbound queue and DKIM keys
        """
        -- A queued message holds a reference to its content (refcount), like a mailbox entry does.
        CREATE TABLE queue(
          id INTEGER PRIMARY KEY,
          queue_id TEXT NOT NULL UNIQUE,
          message_id INTEGER NOT NULL REFERENCES message(id),
          created REAL NOT NULL,
          delay_notified INTEGER NOT NULL DEFAULT 0);
        -- status: 0 pending, 1 delivered, 2 failed.
        CREATE TABLE queue_recipient(
          id INTEGER PRIMARY KEY,
          queue_id INTEGER NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
          address TEXT NOT NULL,
          domain TEXT NOT NULL,
          notify TEXT,
          orcpt TEXT,
          status INTEGER NOT NULL DEFAULT 0,
          attempts INTEGER NOT NULL DEFAULT 0,
          next_attempt REAL NOT NULL,
          last_attempt REAL,
          last_reply TEXT,
          remote_host TEXT);
        CREATE INDEX queue_recipient_queue ON queue_recipient(queue_id);
        CREATE INDEX queue_recipient_due ON queue_recipient(next_attempt) WHERE status = 0;
        CREATE TRIGGER queue_ref AFTER INSERT ON queue BEGIN
          UPDATE message SET refcount = refcount + 1 WHERE id = NEW.message_id; END;
        CREATE TRIGGER queue_unref AFTER DELETE ON queue BEGIN
          UPDATE message SET refcount = refcount - 1 WHERE id = OLD.message_id; END;
        CREATE TABLE dkim_key(
          domain TEXT NOT NULL,
          selector TEXT NOT NULL,
          algorithm TEXT NOT NULL,
          private_key TEXT NOT NULL,
          created REAL NOT NULL,
          PRIMARY KEY(domain, selector));
        """,
        // 4: the Bayesian spam filter's counts; owner 0 is the global set.
        """
        CREATE TABLE bayes_token(
          owner INTEGER NOT NULL,
          token INTEGER NOT NULL,
          spam INTEGER NOT NULL DEFAULT 0,
          ham INTEGER NOT NULL DEFAULT 0,
          PRIMARY KEY(owner, token)) WITHOUT ROWID;
        CREATE TABLE bayes_total(
          owner INTEGER PRIMARY KEY,
          spam INTEGER NOT NULL DEFAULT 0,
          ham INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE bayes_trained(
          owner INTEGER NOT NULL,
          message_key TEXT NOT NULL,
          spam INTEGER NOT NULL,
          PRIMARY KEY(owner, message_key)) WITHOUT ROWID;
        """,
        // 5: the delivery log (tern trace)
        """
        CREATE TABLE delivery_log(
          id INTEGER PRIMARY KEY,
          at REAL NOT NULL,
          queue_id TEXT NOT NULL,
          message_id TEXT,
          kind TEXT NOT NULL,
          detail TEXT NOT NULL,
          related TEXT);
        CREATE INDEX delivery_log_queue ON delivery_log(queue_id);
        CREATE INDEX delivery_log_related ON delivery_log(related) WHERE related IS NOT NULL;
        CREATE INDEX delivery_log_message ON delivery_log(message_id) WHERE message_id IS NOT NULL;
        CREATE INDEX delivery_log_at ON delivery_log(at);
        """,
        // 6: ids that are never handed out twice. SQLite gives a new row the largest rowid + 1, so deleting the newest
        // message or mailbox let the next one take its id, and whatever was keyed by it (IMAP's envelope and header
        // caches, a mailbox's shared view) answered with the old one's data, across accounts. Messages and
        // mailboxes now take their ids from `id_sequence`, which only grows; UIDVALIDITY likewise never repeats
        // within an account, even for a mailbox deleted and made again in the same second (RFC 9051 §2.3.1.1).
        """
        CREATE TABLE id_sequence(name TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
        INSERT INTO id_sequence(name, last) VALUES ('message', coalesce((SELECT max(id) FROM message), 0));
        INSERT INTO id_sequence(name, last) VALUES ('mailbox', coalesce((SELECT max(id) FROM mailbox), 0));
        CREATE TRIGGER message_id_sequence AFTER INSERT ON message BEGIN
          UPDATE id_sequence SET last = max(last, NEW.id) WHERE name = 'message'; END;
        CREATE TRIGGER mailbox_id_sequence AFTER INSERT ON mailbox BEGIN
          UPDATE id_sequence SET last = max(last, NEW.id) WHERE name = 'mailbox'; END;
        ALTER TABLE account ADD COLUMN last_uidvalidity INTEGER NOT NULL DEFAULT 0;
        UPDATE account SET last_uidvalidity = coalesce((SELECT max(uidvalidity) FROM mailbox WHERE account_id = account.id), 0);
        """,
        // 7: IMAP4rev1's \Recent (RFC 3501 §2.3.2): UIDs from first_recent_uid on have not been seen by any session.
        // Mailboxes that exist at the upgrade start with nothing recent.
        """
        ALTER TABLE mailbox ADD COLUMN first_recent_uid INTEGER NOT NULL DEFAULT 1;
        UPDATE mailbox SET first_recent_uid = uidnext;
        """,
        // 8: when a message was saved into its mailbox (RFC 8514 SAVEDATE): delivery, APPEND, COPY or MOVE. For messages
        // that were there before, their arrival time is the best known.
        """
        ALTER TABLE mailbox_message ADD COLUMN saved REAL NOT NULL DEFAULT 0;
        UPDATE mailbox_message SET saved = internal_date;
        """,
        // 9: each mailbox's message count, kept by triggers, so that listing mailboxes (STATUS, LIST, APPEND, COPY)
        // does not count a large mailbox's rows each time (after any write, other connections read them from disk
        // again); and an index of unreferenced content for the clean-up after expunges.
        """
        ALTER TABLE mailbox ADD COLUMN message_count INTEGER NOT NULL DEFAULT 0;
        UPDATE mailbox SET message_count = (SELECT count(*) FROM mailbox_message mm WHERE mm.mailbox_id = mailbox.id);
        CREATE TRIGGER mailbox_message_count_insert AFTER INSERT ON mailbox_message BEGIN
          UPDATE mailbox SET message_count = message_count + 1 WHERE id = NEW.mailbox_id; END;
        CREATE TRIGGER mailbox_message_count_delete AFTER DELETE ON mailbox_message BEGIN
          UPDATE mailbox SET message_count = message_count - 1 WHERE id = OLD.mailbox_id; END;
        CREATE TRIGGER mailbox_message_count_move AFTER UPDATE OF mailbox_id ON mailbox_message
          WHEN NEW.mailbox_id != OLD.mailbox_id BEGIN
          UPDATE mailbox SET message_count = message_count - 1 WHERE id = OLD.mailbox_id;
          UPDATE mailbox SET message_count = message_count + 1 WHERE id = NEW.mailbox_id; END;
        -- Content no mailbox or queue entry references any more, found without reading the whole message table (the
        -- clean-up after each expunge read every stored message before).
        CREATE INDEX message_unreferenced ON message(id) WHERE refcount <= 0;
        """,
        // 10: queue rows take their ids from `id_sequence` too: the queue runner wakes to scan above the newest id it
        // has seen, and a reused id (the last row removed, a new one inserted) was below it and waited for a full scan.
        """
        INSERT INTO id_sequence(name, last) VALUES ('queue', coalesce((SELECT max(id) FROM queue), 0));
        CREATE TRIGGER queue_id_sequence AFTER INSERT ON queue BEGIN
          UPDATE id_sequence SET last = max(last, NEW.id) WHERE name = 'queue'; END;
        """,
        // 11: leases on due recipients (QueueStore.queuedMessages): the runner that took a recipient for delivery and
        // until when. Several runners (several nodes on a shared store) never get the same recipient at once.
        """
        ALTER TABLE queue_recipient ADD COLUMN leased_until REAL;
        ALTER TABLE queue_recipient ADD COLUMN leased_by TEXT;
        """,
        // 12: each account's Sieve scripts, at most one active.
        """
        CREATE TABLE sieve_script(
          account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,
          name TEXT NOT NULL,
          content TEXT NOT NULL,
          active INTEGER NOT NULL DEFAULT 0,
          PRIMARY KEY(account_id, name));
        CREATE UNIQUE INDEX sieve_script_active ON sieve_script(account_id) WHERE active;
        """,
        // 13: what Sieve scripts remember between messages: the senders a vacation reply went to (per handle) and the
        // ids the duplicate test has seen, each until its period ends.
        """
        CREATE TABLE sieve_seen(
          key TEXT PRIMARY KEY,
          until REAL NOT NULL);
        """,
        // 14: `id_sequence` remembers the largest id removed rather than the largest inserted, and the next id is one
        // more than that or than the table's largest (see `nextIDSQL`): the same ids as before, without a write to
        // `id_sequence` (a page of the WAL, an fsync'd 4 KiB) at every delivered message.
        """
        DROP TRIGGER message_id_sequence;
        DROP TRIGGER mailbox_id_sequence;
        DROP TRIGGER queue_id_sequence;
        CREATE TRIGGER message_id_retired AFTER DELETE ON message BEGIN
          UPDATE id_sequence SET last = max(last, OLD.id) WHERE name = 'message'; END;
        CREATE TRIGGER mailbox_id_retired AFTER DELETE ON mailbox BEGIN
          UPDATE id_sequence SET last = max(last, OLD.id) WHERE name = 'mailbox'; END;
        CREATE TRIGGER queue_id_retired AFTER DELETE ON queue BEGIN
          UPDATE id_sequence SET last = max(last, OLD.id) WHERE name = 'queue'; END;
        """,
        // 15: a message's inline content in a table of its own, written once. The message row changes whenever a
        // mailbox or the queue takes or drops a reference (refcount), and SQLite writes a changed row whole: with the
        // content in it, each such change wrote the content again (a 100 KB delivery put 250 KB into the WAL, an IMAP
        // COPY of a large message another copy). The content row goes with its message.
        """
        CREATE TABLE message_content(
          id INTEGER PRIMARY KEY,
          content BLOB);
        INSERT INTO message_content(id, content) SELECT id, content FROM message WHERE blob_key IS NULL;
        ALTER TABLE message DROP COLUMN content;
        CREATE TRIGGER message_content_drop AFTER DELETE ON message BEGIN
          DELETE FROM message_content WHERE id = OLD.id; END;
        """,
    ]

    /// The next id of `message`, `mailbox` or `queue` rows: one more than any ever handed out (see migrations 6, 10).
    public static func nextIDSQL(_ table: String) -> String {
        "(SELECT max(last, coalesce((SELECT max(id) FROM \(table)), 0)) + 1 FROM id_sequence WHERE name = '\(table)')"
    }

    public static var currentVersion: Int { migrations.count }

    /// `beforeUpgrade` runs when the database is older than this binary, before anything is changed: it may refuse
    /// (by throwing), as an admin command does while an older server still works on the database.
    public static func migrate(_ pool: DatabasePool, beforeUpgrade: (_ found: Int) throws -> Void = { _ in }) throws {
        try pool.writeWithoutTransaction { db in
            let version = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
            guard version <= currentVersion else {
                throw StoreError.schemaTooNew(found: version, supported: currentVersion)
            }
            guard version < currentVersion else { return }
            try beforeUpgrade(version)
            try db.inTransaction(.immediate) {
                // Re-read inside the write lock: another process may have migrated meanwhile.
                let v = try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0
                for n in v..<currentVersion {
                    try db.execute(sql: migrations[n])
                }
                try db.execute(sql: "PRAGMA user_version = \(currentVersion)")
                return .commit
            }
        }
    }
}
