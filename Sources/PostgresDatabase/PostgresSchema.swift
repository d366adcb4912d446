import Logging
import MailStore
import PostgresNIO

/// The PostgreSQL database's shape, apart from what the store does with it: where it is (PostgresURL), its tables and
/// their numbered migrations.
///
/// Numbered schema migrations for PostgreSQL, applied at start under an advisory lock (several nodes may start at
/// once). The version lives in `schema_version`; a database newer than this binary is refused rather than misread.
///
/// The tables follow the SQLite backend's (MailStoreSQLite/Schema.swift) as they stand after its migrations, in
/// PostgreSQL's terms: ids from sequences (never handed out twice), times as seconds since 1970 (double precision, as
/// SQLite stores them, so that a migration between the two keeps them exactly), the counters SQLite keeps by triggers
/// kept by triggers here too at first (migration 12 moved the placement counters into the statements). Until `store = "postgres://…"` is offered in the config (issue 21), migration 1 may
/// still change; from then on only new migrations are added.
public enum PostgresSchema {
    /// Each migration is a list of statements (the extended protocol runs one at a time).
    public static let migrations: [[PostgresQuery]] = [
        // 1: domains, accounts, aliases, mailboxes, subscriptions and the messages they hold.
        [
            """
            CREATE TABLE domain(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              name text NOT NULL UNIQUE,
              created double precision NOT NULL)
            """,
            """
            CREATE TABLE account(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              domain_id bigint NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
              localpart text NOT NULL,
              password text NOT NULL,
              created double precision NOT NULL,
              last_uidvalidity bigint NOT NULL DEFAULT 0,
              UNIQUE(domain_id, localpart))
            """,
            // localpart '' is the domain's catch-all; targets are newline-separated addresses.
            """
            CREATE TABLE alias(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              domain_id bigint NOT NULL REFERENCES domain(id) ON DELETE CASCADE,
              localpart text NOT NULL,
              targets text NOT NULL,
              UNIQUE(domain_id, localpart))
            """,
            """
            CREATE TABLE mailbox(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              account_id bigint NOT NULL REFERENCES account(id) ON DELETE CASCADE,
              name text NOT NULL,
              special_use text,
              uidvalidity bigint NOT NULL,
              uidnext bigint NOT NULL DEFAULT 1,
              highestmodseq bigint NOT NULL DEFAULT 1,
              first_recent_uid bigint NOT NULL DEFAULT 1,
              message_count bigint NOT NULL DEFAULT 0,
              UNIQUE(account_id, name))
            """,
            // By name: a subscription may name a mailbox that does not exist (RFC 9051 §6.3.7).
            """
            CREATE TABLE subscription(
              account_id bigint NOT NULL REFERENCES account(id) ON DELETE CASCADE,
              name text NOT NULL,
              PRIMARY KEY(account_id, name))
            """,
            // One row per stored message, however many mailboxes (and queue entries) hold it: refcount counts them.
            """
            CREATE TABLE message(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              size bigint NOT NULL,
              content bytea,
              received double precision NOT NULL,
              envelope text NOT NULL,
              refcount bigint NOT NULL DEFAULT 0)
            """,
            "CREATE INDEX message_unreferenced ON message(id) WHERE refcount <= 0",
            """
            CREATE TABLE mailbox_message(
              mailbox_id bigint NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
              uid bigint NOT NULL,
              message_id bigint NOT NULL REFERENCES message(id),
              modseq bigint NOT NULL,
              flags bigint NOT NULL DEFAULT 0,
              keywords text NOT NULL DEFAULT '',
              internal_date double precision NOT NULL,
              saved double precision NOT NULL,
              PRIMARY KEY(mailbox_id, uid))
            """,
            "CREATE INDEX mailbox_message_modseq ON mailbox_message(mailbox_id, modseq)",
            "CREATE INDEX mailbox_message_message ON mailbox_message(message_id)",
            // Expunged UIDs with the modseq of their expunge, for QRESYNC VANISHED (RFC 7162 §3.2.10).
            """
            CREATE TABLE expunged(
              mailbox_id bigint NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,
              uid bigint NOT NULL,
              modseq bigint NOT NULL,
              PRIMARY KEY(mailbox_id, uid))
            """,
            // The message's reference count and the mailbox's message count follow mailbox_message.
            """
            CREATE FUNCTION mailbox_message_counts() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'INSERT' THEN
                UPDATE message SET refcount = refcount + 1 WHERE id = NEW.message_id;
                UPDATE mailbox SET message_count = message_count + 1 WHERE id = NEW.mailbox_id;
              ELSIF TG_OP = 'DELETE' THEN
                UPDATE message SET refcount = refcount - 1 WHERE id = OLD.message_id;
                UPDATE mailbox SET message_count = message_count - 1 WHERE id = OLD.mailbox_id;
              ELSIF NEW.mailbox_id <> OLD.mailbox_id THEN
                UPDATE mailbox SET message_count = message_count - 1 WHERE id = OLD.mailbox_id;
                UPDATE mailbox SET message_count = message_count + 1 WHERE id = NEW.mailbox_id;
              END IF;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER mailbox_message_counts AFTER INSERT OR DELETE OR UPDATE OF mailbox_id ON mailbox_message
              FOR EACH ROW EXECUTE FUNCTION mailbox_message_counts()
            """,
        ],
        // 2: contents above the inline limit in chunks, the outbound queue, DKIM keys, the Bayesian filter's counts
        // and the delivery log.
        [
            // A content too large to keep in its message row, in pieces of at most 1 MiB (written and read a piece at a
            // time: a large message never sits whole in memory on its way in).
            """
            CREATE TABLE message_chunk(
              message_id bigint NOT NULL REFERENCES message(id) ON DELETE CASCADE,
              seq integer NOT NULL,
              data bytea NOT NULL,
              PRIMARY KEY(message_id, seq))
            """,
            // A queued message holds a reference to its content, like a mailbox entry does.
            """
            CREATE TABLE queue(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              queue_id text NOT NULL UNIQUE,
              message_id bigint NOT NULL REFERENCES message(id),
              created double precision NOT NULL,
              delay_notified boolean NOT NULL DEFAULT false)
            """,
            // status: 0 pending, 1 delivered, 2 failed.
            """
            CREATE TABLE queue_recipient(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              queue_id bigint NOT NULL REFERENCES queue(id) ON DELETE CASCADE,
              address text NOT NULL,
              domain text NOT NULL,
              notify text,
              orcpt text,
              status integer NOT NULL DEFAULT 0,
              attempts integer NOT NULL DEFAULT 0,
              next_attempt double precision NOT NULL,
              last_attempt double precision,
              last_reply text,
              remote_host text,
              leased_until double precision,
              leased_by text)
            """,
            "CREATE INDEX queue_recipient_queue ON queue_recipient(queue_id)",
            "CREATE INDEX queue_recipient_due ON queue_recipient(next_attempt) WHERE status = 0",
            """
            CREATE FUNCTION queue_refs() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'INSERT' THEN
                UPDATE message SET refcount = refcount + 1 WHERE id = NEW.message_id;
              ELSE
                UPDATE message SET refcount = refcount - 1 WHERE id = OLD.message_id;
              END IF;
              RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER queue_refs AFTER INSERT OR DELETE ON queue FOR EACH ROW EXECUTE FUNCTION queue_refs()",
            """
            CREATE TABLE dkim_key(
              domain text NOT NULL,
              selector text NOT NULL,
              algorithm text NOT NULL,
              private_key text NOT NULL,
              created double precision NOT NULL,
              PRIMARY KEY(domain, selector))
            """,
            // owner 0 is the global set.
            """
            CREATE TABLE bayes_token(
              owner bigint NOT NULL,
              token bigint NOT NULL,
              spam bigint NOT NULL DEFAULT 0,
              ham bigint NOT NULL DEFAULT 0,
              PRIMARY KEY(owner, token))
            """,
            """
            CREATE TABLE bayes_total(
              owner bigint PRIMARY KEY,
              spam bigint NOT NULL DEFAULT 0,
              ham bigint NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE bayes_trained(
              owner bigint NOT NULL,
              message_key text NOT NULL,
              spam boolean NOT NULL,
              PRIMARY KEY(owner, message_key))
            """,
            """
            CREATE TABLE delivery_log(
              id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
              at double precision NOT NULL,
              queue_id text NOT NULL,
              message_id text,
              kind text NOT NULL,
              detail text NOT NULL,
              related text)
            """,
            "CREATE INDEX delivery_log_queue ON delivery_log(queue_id)",
            "CREATE INDEX delivery_log_related ON delivery_log(related) WHERE related IS NOT NULL",
            "CREATE INDEX delivery_log_message ON delivery_log(message_id) WHERE message_id IS NOT NULL",
            "CREATE INDEX delivery_log_at ON delivery_log(at)",
        ],
        // 3: every node hears of every other node's changes (LISTEN/NOTIFY on tern_changes, sent at commit, one notice per
        // payload and transaction): "m ID" a mailbox's messages or flags, "t ID" an account's mailbox list or
        // subscriptions, "q" the outbound queue.
        [
            """
            CREATE FUNCTION notify_mailbox_message() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('tern_changes', 'm ' || OLD.mailbox_id); END IF;
              IF TG_OP <> 'DELETE' THEN PERFORM pg_notify('tern_changes', 'm ' || NEW.mailbox_id); END IF;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER notify_mailbox_message AFTER INSERT OR UPDATE OR DELETE ON mailbox_message
              FOR EACH ROW EXECUTE FUNCTION notify_mailbox_message()
            """,
            // A mailbox made, removed or renamed changes its account's tree; any change to its row (UIDVALIDITY,
            // MODSEQ of an expunge) concerns its sessions.
            """
            CREATE FUNCTION notify_mailbox() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF TG_OP = 'INSERT' THEN PERFORM pg_notify('tern_changes', 't ' || NEW.account_id);
              ELSIF TG_OP = 'DELETE' THEN
                PERFORM pg_notify('tern_changes', 't ' || OLD.account_id);
                PERFORM pg_notify('tern_changes', 'm ' || OLD.id);
              ELSE
                IF NEW.name <> OLD.name THEN PERFORM pg_notify('tern_changes', 't ' || NEW.account_id); END IF;
                PERFORM pg_notify('tern_changes', 'm ' || NEW.id);
              END IF;
              RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER notify_mailbox AFTER INSERT OR UPDATE OR DELETE ON mailbox FOR EACH ROW EXECUTE FUNCTION notify_mailbox()",
            """
            CREATE FUNCTION notify_subscription() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('tern_changes', 't ' || coalesce(NEW.account_id, OLD.account_id));
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER notify_subscription AFTER INSERT OR DELETE ON subscription
              FOR EACH ROW EXECUTE FUNCTION notify_subscription()
            """,
            """
            CREATE FUNCTION notify_queue() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('tern_changes', 'q');
              RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER notify_queue AFTER INSERT ON queue FOR EACH ROW EXECUTE FUNCTION notify_queue()",
        ],
        // 4: what the port-25 checks remember (shared by every node) and which node runs each background job.
        [
            """
            CREATE TABLE rate_counter(
              key text PRIMARY KEY,
              window_hour bigint NOT NULL,
              current bigint NOT NULL,
              previous bigint NOT NULL)
            """,
            """
            CREATE TABLE greylist(
              key text PRIMARY KEY,
              first_seen double precision NOT NULL,
              passed_until double precision)
            """,
            """
            CREATE TABLE job_claim(
              name text PRIMARY KEY,
              holder text NOT NULL,
              until double precision NOT NULL)
            """,
        ],
        // 5: a notice when domains, accounts (names, passwords) or aliases change, so that every node's cache of
        // recipient resolutions and verified logins forgets its answers. It names the node that made the change
        // (`tern.node`, set in the transaction), which has already forgotten.
        [
            """
            CREATE FUNCTION notify_directory() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              PERFORM pg_notify('tern_changes', 'd ' || coalesce(current_setting('tern.node', true), ''));
              RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER notify_domain AFTER INSERT OR UPDATE OR DELETE ON domain FOR EACH STATEMENT EXECUTE FUNCTION notify_directory()",
            """
            CREATE TRIGGER notify_account AFTER INSERT OR DELETE OR UPDATE OF domain_id, localpart, password ON account
              FOR EACH STATEMENT EXECUTE FUNCTION notify_directory()
            """,
            "CREATE TRIGGER notify_alias AFTER INSERT OR UPDATE OR DELETE ON alias FOR EACH STATEMENT EXECUTE FUNCTION notify_directory()",
        ],
        // 6: contents stored once, by their SHA-256: the same message delivered to many accounts in separate
        // transactions (a list server's copies, a newsletter) takes its space once. A message row names its content;
        // `refs` counts the message rows that do, and the last one to go takes the content (and its chunks) with it.
        [
            """
            CREATE TABLE content(
              hash bytea PRIMARY KEY,
              size bigint NOT NULL,
              data bytea,
              refs bigint NOT NULL DEFAULT 0)
            """,
            """
            CREATE TABLE content_chunk(
              hash bytea NOT NULL REFERENCES content(hash) ON DELETE CASCADE,
              seq integer NOT NULL,
              data bytea NOT NULL,
              PRIMARY KEY(hash, seq))
            """,
            "ALTER TABLE message ADD COLUMN content_hash bytea",
            "UPDATE message SET content_hash = sha256(content) WHERE content IS NOT NULL",
            """
            UPDATE message m SET content_hash = (SELECT sha256(string_agg(c.data, ''::bytea ORDER BY c.seq)) FROM message_chunk c
              WHERE c.message_id = m.id) WHERE content IS NULL
            """,
            // A row with neither (it read as empty) keeps reading as empty.
            "UPDATE message SET content_hash = sha256(''::bytea), content = ''::bytea WHERE content_hash IS NULL",
            """
            INSERT INTO content(hash, size, data)
              SELECT DISTINCT ON (content_hash) content_hash, size, content FROM message ORDER BY content_hash
            """,
            """
            INSERT INTO content_chunk(hash, seq, data)
              SELECT DISTINCT ON (m.content_hash, c.seq) m.content_hash, c.seq, c.data
              FROM message m JOIN message_chunk c ON c.message_id = m.id ORDER BY m.content_hash, c.seq
            """,
            "UPDATE content SET refs = (SELECT count(*) FROM message m WHERE m.content_hash = content.hash)",
            "ALTER TABLE message DROP COLUMN content",
            "DROP TABLE message_chunk",
            "ALTER TABLE message ALTER COLUMN content_hash SET NOT NULL",
            "ALTER TABLE message ADD FOREIGN KEY (content_hash) REFERENCES content(hash)",
            "CREATE INDEX message_content ON message(content_hash)",
            """
            CREATE FUNCTION message_content_refs() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              UPDATE content SET refs = refs - 1 WHERE hash = OLD.content_hash;
              DELETE FROM content WHERE hash = OLD.content_hash AND refs <= 0;
              RETURN NULL;
            END $$
            """,
            "CREATE TRIGGER message_content_refs AFTER DELETE ON message FOR EACH ROW EXECUTE FUNCTION message_content_refs()",
        ],
        // 7: contents compressed with LZ4 instead of PostgreSQL's default pglz: reading mail back (FETCH, SEARCH
        // BODY, RETR) decompresses every content, and LZ4 does it at about twice the speed for nearly the same space.
        // Applies to contents stored from now on; a server built without LZ4 keeps pglz.
        [
            """
            DO $$
            BEGIN
              ALTER TABLE content ALTER COLUMN data SET COMPRESSION lz4;
              ALTER TABLE content_chunk ALTER COLUMN data SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported THEN
              RAISE NOTICE 'LZ4 not available: contents stay compressed with pglz';
            END $$
            """,
        ],
        // 8: the UIDs expunged after a modseq are read at every check for changes: by their own index, not by a walk
        // over every expunge the mailbox ever had.
        [
            "CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq)",
        ],
        // 9: each account's Sieve scripts, at most one active.
        [
            """
            CREATE TABLE sieve_script(
              account_id bigint NOT NULL REFERENCES account(id) ON DELETE CASCADE,
              name text NOT NULL,
              content text NOT NULL,
              active boolean NOT NULL DEFAULT false,
              PRIMARY KEY(account_id, name))
            """,
            "CREATE UNIQUE INDEX sieve_script_active ON sieve_script(account_id) WHERE active",
        ],
        // 10: a change to a Sieve script is announced as a directory change: every node's cache of the active scripts
        // delivery runs forgets them.
        [
            "CREATE TRIGGER notify_sieve_script AFTER INSERT OR UPDATE OR DELETE ON sieve_script FOR EACH STATEMENT EXECUTE FUNCTION notify_directory()",
        ],
        // 11: what Sieve scripts remember between messages: the senders a vacation reply went to (per handle) and the ids
        // the duplicate test has seen, each until its period ends. Shared by every node.
        [
            "CREATE TABLE sieve_seen(key text PRIMARY KEY, until double precision NOT NULL)",
        ],
        // 12: a placement counts itself in the statement that makes it (delivery, COPY, migration: the mailbox's
        // message count with its next UID, the message's references at its insert or in one update per statement), no
        // longer in a trigger per row (a plpgsql call and two updates per delivered message). Removals are counted per
        // statement (an EXPUNGE of thousands, two updates); a move between mailboxes (INBOX renamed) still per row.
        [
            "DROP TRIGGER mailbox_message_counts ON mailbox_message",
            "DROP FUNCTION mailbox_message_counts()",
            """
            CREATE FUNCTION mailbox_message_removed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              UPDATE message m SET refcount = m.refcount - g.n
                FROM (SELECT message_id, count(*) AS n FROM gone GROUP BY message_id) g WHERE m.id = g.message_id;
              UPDATE mailbox b SET message_count = b.message_count - g.n
                FROM (SELECT mailbox_id, count(*) AS n FROM gone GROUP BY mailbox_id) g WHERE b.id = g.mailbox_id;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER mailbox_message_removed AFTER DELETE ON mailbox_message REFERENCING OLD TABLE AS gone
              FOR EACH STATEMENT EXECUTE FUNCTION mailbox_message_removed()
            """,
            """
            CREATE FUNCTION mailbox_message_moved() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              UPDATE mailbox SET message_count = message_count - 1 WHERE id = OLD.mailbox_id;
              UPDATE mailbox SET message_count = message_count + 1 WHERE id = NEW.mailbox_id;
              RETURN NULL;
            END $$
            """,
            """
            CREATE TRIGGER mailbox_message_moved AFTER UPDATE OF mailbox_id ON mailbox_message
              FOR EACH ROW WHEN (OLD.mailbox_id <> NEW.mailbox_id) EXECUTE FUNCTION mailbox_message_moved()
            """,
        ],
    ]

    public static var currentVersion: Int { migrations.count }

    /// Brings the database to `currentVersion`. Nodes starting together take turns on an advisory lock; each
    /// migration and its version number commit together.
    public static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.inTransaction(logger: logger) { db in
            // A migration may take long on a large database, and a node waits for another's: no time limits here.
            try await db.query("SET LOCAL statement_timeout = 0", logger: logger)
            try await db.query("SET LOCAL lock_timeout = 0", logger: logger)
            // A lock held until this transaction ends: one migrating node at a time.
            try await db.query("SELECT pg_advisory_xact_lock(\(Self.migrationLock))", logger: logger)
            try await db.query("CREATE TABLE IF NOT EXISTS schema_version(version integer NOT NULL)", logger: logger)
            var version = 0
            for try await v in try await db.query("SELECT version FROM schema_version", logger: logger).decode(Int.self) { version = v }
            guard version <= currentVersion else { throw StoreError.schemaTooNew(found: version, supported: currentVersion) }
            guard version < currentVersion else { return }
            for n in version..<currentVersion {
                for statement in migrations[n] { try await db.query(statement, logger: logger) }
            }
            try await db.query("DELETE FROM schema_version", logger: logger)
            try await db.query("INSERT INTO schema_version(version) VALUES (\(currentVersion))", logger: logger)
        }
    }

    /// The advisory lock key of schema migrations ("tern" in ASCII).
    public static let migrationLock: Int64 = 0x7465_726E
}

extension PostgresClient {
    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws (with its own error, not
    /// the client's wrapper, so that callers see the StoreError they would see from any backend).
    /// A COMMIT whose answer was lost (the connection went) may have been made: that is `StoreUnavailable`, which no
    /// caller runs again (a batch retried change by change would store its messages twice); a COMMIT the server
    /// refused was rolled back, and BEGIN's failure left nothing done: their own errors.
    public func inTransaction<R: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> R) async throws -> R {
        do {
            return try await withTransaction(logger: logger) { db in try await body(db) }
        } catch let error as PostgresTransactionError {
            if let inner = error.closureError { throw inner }
            if let begin = error.beginError { throw begin }
            if let commit = error.commitError {
                if let refused = commit as? PSQLError, refused.serverInfo?[.sqlState] != nil { throw refused }
                throw StoreUnavailable("the answer to a commit was lost, so whether it was made is not known (\(String(reflecting: commit)))")
            }
            throw error
        }
    }
}
