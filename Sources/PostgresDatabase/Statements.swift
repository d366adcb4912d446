import MailStore
import PostgresNIO

// The statements the store runs most often, prepared: PostgreSQL parses and plans each once per connection.

/// Usual deliveries as one prepared statement (MailStorePostgres's `deliverInOneStatement`): parsed and planned once per connection,
/// where a statement sent as text costs PostgreSQL a parse and a plan of its parts at every batch. Deliveries to one
/// mailbox take consecutive UIDs and MODSEQs in the batch's order; equal contents are stored once.
public struct DeliverStatement: PostgresPreparedStatement {
    public static let sql = """
        WITH d AS (
          SELECT * FROM unnest($1::bigint[], $2::text[], $3::bytea[], $4::bigint[], $5::bytea[], $7::text[], $8::bigint[],
                               $9::text[], $10::double precision[])
            WITH ORDINALITY AS d(account, name, hash, size, data, envelope, flags, keywords, internal_date, n)
        ), target AS (
          SELECT id, account_id, name FROM mailbox WHERE (account_id, name) IN (SELECT account, name FROM d)
          ORDER BY id FOR UPDATE
        ), counted AS MATERIALIZED (
          SELECT d.*, t.id AS mailbox_id, nextval(pg_get_serial_sequence('message', 'id')) AS message_id,
                 row_number() OVER (PARTITION BY t.id ORDER BY d.n) AS k, count(*) OVER (PARTITION BY t.id) AS cnt
          FROM d JOIN target t ON t.account_id = d.account AND t.name = d.name
        ), box AS (
          UPDATE mailbox b SET uidnext = b.uidnext + c.cnt, highestmodseq = b.highestmodseq + c.cnt,
                               message_count = b.message_count + c.cnt
          FROM (SELECT DISTINCT mailbox_id, cnt FROM counted) c WHERE b.id = c.mailbox_id
          RETURNING b.id, b.uidnext - c.cnt AS first_uid, b.highestmodseq - c.cnt AS first_modseq
        ), stored AS (
          INSERT INTO content(hash, size, data, refs)
          SELECT DISTINCT ON (hash) hash, size, data, count(*) OVER (PARTITION BY hash) FROM counted ORDER BY hash
          ON CONFLICT (hash) DO UPDATE SET refs = content.refs + EXCLUDED.refs RETURNING hash
        ), msg AS (
          INSERT INTO message(id, size, content_hash, received, envelope, refcount) OVERRIDING SYSTEM VALUE
          SELECT c.message_id, c.size, c.hash, $6, c.envelope, 1 FROM counted c WHERE c.hash IN (SELECT hash FROM stored)
          RETURNING id
        ), placed AS (
          INSERT INTO mailbox_message(mailbox_id, uid, message_id, modseq, flags, keywords, internal_date, saved)
          SELECT c.mailbox_id, b.first_uid + c.k - 1, c.message_id, b.first_modseq + c.k, c.flags, c.keywords,
                 c.internal_date, $6
          FROM counted c JOIN box b ON b.id = c.mailbox_id JOIN msg ON msg.id = c.message_id
          RETURNING mailbox_id, uid, message_id
        ), logged AS (
          INSERT INTO delivery_log(at, queue_id, message_id, kind, detail, related)
          SELECT e.at, e.queue_id, CASE WHEN e.has_mid THEN e.mid END, e.kind, e.detail, CASE WHEN e.has_rel THEN e.rel END
          FROM unnest($11::bigint[], $12::double precision[], $13::text[], $14::text[], $15::boolean[], $16::text[],
                      $17::text[], $18::text[], $19::boolean[]) AS e(n, at, queue_id, mid, has_mid, kind, detail, rel, has_rel)
          WHERE e.n IN (SELECT n FROM counted)
        )
        SELECT c.n, p.message_id, p.mailbox_id, p.uid FROM placed p JOIN counted c ON c.message_id = p.message_id
        """
    public typealias Row = (Int64, Int64, Int64, Int64)

    public var now: Double
    public var account: [Int64] = [], name: [String] = [], hash: [ByteBuffer] = [], size: [Int64] = [], content: [ByteBuffer] = []
    public var envelope: [String] = [], flags: [Int64] = [], keywords: [String] = [], internalDate: [Double] = []
    public var logOf: [Int64] = [], at: [Double] = [], queueIDs: [String] = [], messageIDs: [String] = [], hasMessageID: [Bool] = []
    public var kinds: [String] = [], details: [String] = [], related: [String] = [], hasRelated: [Bool] = []

    public init(now: Double) { self.now = now }

    public func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 19)
        try b.append(account); try b.append(name); try b.append(hash); try b.append(size); try b.append(content)
        b.append(now); try b.append(envelope); try b.append(flags); try b.append(keywords); try b.append(internalDate)
        try b.append(logOf); try b.append(at); try b.append(queueIDs); try b.append(messageIDs); try b.append(hasMessageID)
        try b.append(kinds); try b.append(details); try b.append(related); try b.append(hasRelated)
        return b
    }

    public func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// STORE as one statement (MailStorePostgres's `storeFlags`). The arithmetic is `FlagOperation.apply`'s, written in SQL (a test holds
/// the two to each other): flags added, removed or replaced as a bit mask; keywords added in the order given (each
/// once, those already set kept where they are), removed, or replaced by the list as given. A message whose MODSEQ is
/// above UNCHANGEDSINCE is not changed and comes back marked failed (RFC 7162 §3.1.3).
public struct StoreFlagsStatement: PostgresPreparedStatement {
    public static let sql = """
        WITH box AS (
          SELECT id FROM mailbox WHERE id = $1 FOR UPDATE
        ), cur AS (
          SELECT mm.uid, mm.message_id, m.size, mm.internal_date, mm.flags, mm.keywords, mm.modseq, mm.saved, u.n
          FROM (SELECT uid, min(n) AS n FROM unnest($2::bigint[]) WITH ORDINALITY AS x(uid, n) GROUP BY uid) u
          JOIN mailbox_message mm ON mm.mailbox_id = $1 AND mm.uid = u.uid
          JOIN message m ON m.id = mm.message_id
          WHERE EXISTS (SELECT 1 FROM box)
          FOR UPDATE OF mm
        ), computed AS (
          SELECT cur.*, ($7 AND cur.modseq > $6) AS failed,
            CASE $3::bigint WHEN 0 THEN cur.flags | $4 WHEN 1 THEN cur.flags & ~$4::bigint ELSE $4 END AS new_flags,
            CASE $3::bigint
              WHEN 0 THEN array_to_string(string_to_array(cur.keywords, ' ') || ARRAY(
                SELECT k FROM unnest($5::text[]) WITH ORDINALITY AS y(k, o) WHERE k <> ALL (string_to_array(cur.keywords, ' '))
                GROUP BY k ORDER BY min(o)), ' ')
              WHEN 1 THEN array_to_string(ARRAY(
                SELECT k FROM unnest(string_to_array(cur.keywords, ' ')) WITH ORDINALITY AS y(k, o) WHERE k <> ALL ($5::text[])
                ORDER BY o), ' ')
              ELSE array_to_string($5::text[], ' ')
            END AS new_keywords
          FROM cur
        ), changed AS (
          SELECT c.*, row_number() OVER (ORDER BY c.n) AS k, count(*) OVER () AS total
          FROM computed c WHERE NOT c.failed AND (c.new_flags <> c.flags OR c.new_keywords <> c.keywords)
        ), bump AS (
          UPDATE mailbox SET highestmodseq = highestmodseq + (SELECT count(*) FROM changed)
          WHERE id = $1 AND EXISTS (SELECT 1 FROM changed) RETURNING highestmodseq
        ), written AS (
          UPDATE mailbox_message mm SET flags = c.new_flags, keywords = c.new_keywords, modseq = bump.highestmodseq - c.total + c.k
          FROM changed c, bump WHERE mm.mailbox_id = $1 AND mm.uid = c.uid
        )
        SELECT c.uid, c.message_id, c.size, c.internal_date, c.new_flags, c.new_keywords, bump.highestmodseq - c.total + c.k,
               c.saved, false, c.n
        FROM changed c, bump
        UNION ALL
        SELECT uid, message_id, size, internal_date, flags, keywords, modseq, saved, true, n FROM computed WHERE failed
        ORDER BY 10
        """
    public typealias Row = (Int64, Int64, Int64, Double, Int64, String, Int64, Double, Bool, Int64)

    public var mailbox: Int64, uids: [Int64], operation: FlagOperation, flags: Int64, keywords: [String], unchangedSince: Int64?

    public init(mailbox: Int64, uids: [Int64], operation: FlagOperation, flags: Int64, keywords: [String], unchangedSince: Int64?) {
        (self.mailbox, self.uids, self.operation, self.flags, self.keywords, self.unchangedSince) =
            (mailbox, uids, operation, flags, keywords, unchangedSince)
    }

    public func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 7)
        b.append(mailbox); try b.append(uids)
        b.append(Int64(operation == .add ? 0 : operation == .remove ? 1 : 2)); b.append(flags); try b.append(keywords)
        b.append(unchangedSince ?? 0); b.append(unchangedSince != nil)
        return b
    }

    public func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A mailbox's changes since a modseq in one statement (MailStorePostgres's `mailboxChanges`), prepared: every IMAP command that may
/// report changes asks it.
public struct ChangesStatement: PostgresPreparedStatement {
    public static let sql = """
        SELECT 1 AS kind, mm.uid, mm.message_id, m.size, mm.internal_date, mm.flags, mm.keywords, mm.modseq, mm.saved
          FROM mailbox_message mm JOIN message m ON m.id = mm.message_id WHERE mm.mailbox_id = $1 AND mm.modseq > $2
        UNION ALL
        SELECT 0, uidvalidity, uidnext, 0, 0, 0, '', highestmodseq, 0 FROM mailbox WHERE id = $1
        UNION ALL
        SELECT 2, uid, 0, 0, 0, 0, '', modseq, 0 FROM expunged WHERE $3 AND mailbox_id = $1 AND modseq > $2
        ORDER BY 1, 2
        """
    public typealias Row = (Int32, Int64, Int64, Int64, Double, Int64, String, Int64, Double)
    public var mailbox: Int64, after: Int64, withExpunged: Bool

    public init(mailbox: Int64, after: Int64, withExpunged: Bool) {
        (self.mailbox, self.after, self.withExpunged) = (mailbox, after, withExpunged)
    }

    public func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 3)
        b.append(mailbox); b.append(after); b.append(withExpunged)
        return b
    }

    public func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}

/// A mailbox's state by name, what SELECT reads first (prepared: every login-SELECT asks it).
public struct MailboxStateStatement: PostgresPreparedStatement {
    public static let sql = "SELECT id, uidvalidity, uidnext, highestmodseq, first_recent_uid FROM mailbox WHERE account_id = $1 AND name = $2"
    public typealias Row = (Int64, Int64, Int64, Int64, Int64)
    public var account: Int64, name: String

    public init(account: Int64, name: String) { (self.account, self.name) = (account, name) }

    public func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 2)
        b.append(account); b.append(name)
        return b
    }

    public func decodeRow(_ row: PostgresRow) throws -> Row { try row.decode(Row.self) }
}
