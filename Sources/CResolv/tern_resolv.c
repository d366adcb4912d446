#include "tern_resolv.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

static __thread struct __res_state state;
static __thread int state_ready = 0;

int tern_dns_query(const char *name, int type, const char *const *servers, const int *ports, int server_count,
                   int timeout_seconds, int attempts, unsigned char *answer, int answer_size, int *status) {
    /* A fresh state per query: it rereads /etc/resolv.conf (cheap beside a query, and answers are cached above) and
       forgets the nameserver a previous call on this thread may have set. */
    if (state_ready) res_nclose(&state);
    memset(&state, 0, sizeof state);
    state_ready = 0;
    if (res_ninit(&state) != 0) { *status = TERN_DNS_TEMPORARY; return -1; }
    state_ready = 1;
    state.retrans = timeout_seconds > 0 ? timeout_seconds : 5;
    state.retry = attempts > 0 ? attempts : 2;
    /* No search list: names are always absolute. */
    state.options &= ~(RES_DNSRCH | RES_DEFNAMES);
    if (server_count > 0) {
        /* libresolv tries its servers in order (MAXNS = 3 of them). */
        int n = server_count < MAXNS ? server_count : MAXNS;
        for (int i = 0; i < n; i++) {
            struct in_addr addr;
            if (inet_pton(AF_INET, servers[i], &addr) != 1) { *status = TERN_DNS_PERMANENT; return -1; }
            state.nsaddr_list[i].sin_family = AF_INET;
            state.nsaddr_list[i].sin_addr = addr;
            state.nsaddr_list[i].sin_port = htons(ports[i] > 0 ? ports[i] : 53);
        }
        state.nscount = n;
    }
    int n = res_nquery(&state, name, ns_c_in, type, answer, answer_size);
    if (n < 0) {
        switch (state.res_h_errno) {
        case HOST_NOT_FOUND: *status = TERN_DNS_NXDOMAIN; break;
        case NO_DATA: *status = TERN_DNS_NODATA; break;
        case NO_RECOVERY: *status = TERN_DNS_PERMANENT; break;
        default: *status = TERN_DNS_TEMPORARY; break;
        }
        return -1;
    }
    *status = TERN_DNS_OK;
    return n;
}

int tern_dns_authentic(const unsigned char *answer, int length) {
    ns_msg msg;
    if (ns_initparse(answer, length, &msg) != 0) return -1;
    return ns_msg_getflag(msg, ns_f_ad) ? 1 : 0;
}

int tern_dns_answer_count(const unsigned char *answer, int length) {
    ns_msg msg;
    if (ns_initparse(answer, length, &msg) != 0) return -1;
    return ns_msg_count(msg, ns_s_an);
}

int tern_dns_answer_record(const unsigned char *answer, int length, int index, int *type, uint32_t *ttl,
                           int *rdata_offset, int *rdata_length) {
    ns_msg msg;
    ns_rr rr;
    if (ns_initparse(answer, length, &msg) != 0) return -1;
    if (ns_parserr(&msg, ns_s_an, index, &rr) != 0) return -1;
    *type = ns_rr_type(rr);
    *ttl = ns_rr_ttl(rr);
    *rdata_offset = (int)(ns_rr_rdata(rr) - answer);
    *rdata_length = ns_rr_rdlen(rr);
    return 0;
}

int tern_dns_expand(const unsigned char *answer, int length, int offset, char *out, int out_size) {
    if (offset < 0 || offset >= length) return -1;
    return dn_expand(answer, answer + length, answer + offset, out, out_size);
}
