#ifndef TERN_RESOLV_H
#define TERN_RESOLV_H

#include <stdint.h>

/* A small C face over glibc's libresolv (res_nquery, ns_initparse/ns_parserr, dn_expand): macros and unions that
   Swift cannot call directly stay here. Every function is safe to call from several threads at once: each thread
   has its own resolver state. */

/* Outcome of a query, from the resolver's h_errno. */
enum {
    TERN_DNS_OK = 0,
    TERN_DNS_NXDOMAIN = 1,   /* HOST_NOT_FOUND: the name does not exist */
    TERN_DNS_NODATA = 2,     /* NO_DATA: the name exists, without records of this type */
    TERN_DNS_TEMPORARY = 3,  /* TRY_AGAIN: timeout, SERVFAIL, no answer */
    TERN_DNS_PERMANENT = 4,  /* NO_RECOVERY: refused, malformed */
};

/* Sends one query for `name` and `type` (ns_t_mx, ...) to `servers` (IPv4 addresses with their `ports`, 0 meaning
   53; up to 3 are used, in order), or to the system's nameservers (/etc/resolv.conf) when `server_count` is 0.
   Returns the answer's length and fills `answer`, or -1 with `*status` set. */
int tern_dns_query(const char *name, int type, const char *const *servers, const int *ports, int server_count,
                   int timeout_seconds, int attempts, unsigned char *answer, int answer_size, int *status);

/* 1 when the answer's AD bit is set (RFC 4035 §3.2.3: the resolver validated it with DNSSEC), 0 when not, -1 if the
   message is malformed. glibc passes the bit on only from resolvers /etc/resolv.conf trusts (`options trust-ad`). */
int tern_dns_authentic(const unsigned char *answer, int length);

/* The number of records in the answer section, or -1 if the message is malformed. */
int tern_dns_answer_count(const unsigned char *answer, int length);

/* Record `index` of the answer section: its type, TTL and where its RDATA lies in `answer`. 0 on success. */
int tern_dns_answer_record(const unsigned char *answer, int length, int index, int *type, uint32_t *ttl,
                           int *rdata_offset, int *rdata_length);

/* Expands the (possibly compressed) domain name at `offset` into `out`; returns the octets it took in the message,
   or -1. */
int tern_dns_expand(const unsigned char *answer, int length, int offset, char *out, int out_size);

#endif
