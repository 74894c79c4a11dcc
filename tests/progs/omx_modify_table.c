// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_modify_table: walk rdma_omx's modify_qp validation over every
 * (type, current state, next state, attribute mask) case below, on the
 * kernel's QP shadow only (raw uverbs commands, no provider), and print
 * one line per case:
 *
 *   TYPE CUR NEXT MASK VERDICT
 *   RC INIT RTR 0x00139101 0
 *
 * TYPE RC, UC or UD; CUR and NEXT one of RESET INIT RTR RTS SQD ERR (SQE
 * is skipped: no modify leads there); MASK the IB_QP_* attribute mask in
 * hex (8 digits); VERDICT 0 (accepted) or the errno of the refusal
 * (22 EINVAL, 95 EOPNOTSUPP).  Lines are sorted in C-locale byte order
 * (LC_ALL=C sort), one per case, so the output of the engine's walk of
 * the same cases can be compared with diff.
 *
 * The cases of one (TYPE, CUR, NEXT): the pair's minimal legal mask,
 * M = IB_QP_STATE | the attributes IBTA requires for CUR -> NEXT (none
 * for a pair that is no legal transition), without IB_QP_AV (the provider
 * never sends it); M with each attribute bit of the list below that it
 * holds removed; and M with each bit of the list it lacks added.  The
 * list: ACCESS_FLAGS PKEY_INDEX PORT QKEY PATH_MTU TIMEOUT RETRY_CNT
 * RNR_RETRY RQ_PSN MAX_QP_RD_ATOMIC MIN_RNR_TIMER SQ_PSN
 * MAX_DEST_RD_ATOMIC DEST_QPN, plus AV (rdma_omx refuses it, EOPNOTSUPP)
 * and ALT_PATH (ib_core refuses it on a RoCE port before the driver,
 * EINVAL).  Every attribute carries a valid value (port 1, pkey index 0,
 * path MTU 1024, timeout 14, retry and RNR retry 7, min RNR timer 12,
 * rd atomic 1, qkey 0x11111111, access LOCAL_WRITE|REMOTE_WRITE, PSNs
 * 0x123456/0x654321), so only states and masks decide.
 *
 * Each case starts from a QP brought to CUR along RESET -> INIT -> RTR ->
 * RTS (-> SQD or -> ERR) with minimal masks.  A refused case must leave
 * the QP exactly as it was (query before and after) and an accepted one
 * must land in NEXT; otherwise the program reports it on stderr and exits
 * 1 after printing the whole table.
 *
 *   omx_modify_table IBDEV|/dev/infiniband/uverbsN
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "omx_raw.h"

static const struct {
	const char *name;
	uint8_t qpt;
} types[] = {
	{ "RC", IB_UVERBS_QPT_RC },
	{ "UC", IB_UVERBS_QPT_UC },
	{ "UD", IB_UVERBS_QPT_UD },
};

static const struct {
	const char *name;
	uint8_t state;
} states[] = {
	{ "RESET", S_RESET }, { "INIT", S_INIT }, { "RTR", S_RTR },
	{ "RTS", S_RTS }, { "SQD", S_SQD }, { "ERR", S_ERR },
};

#define NTYPES (sizeof(types) / sizeof(types[0]))
#define NSTATES (sizeof(states) / sizeof(states[0]))

static const uint32_t attr_bits[] = {
	M_ACCESS, M_PKEY, M_PORT, M_QKEY, M_PATH_MTU, M_TIMEOUT, M_RETRY,
	M_RNR_RETRY, M_RQ_PSN, M_MAX_RD, M_MIN_RNR, M_SQ_PSN, M_MAX_DEST_RD,
	M_DEST_QPN, M_AV, M_ALT_PATH,
};

#define NBITS (sizeof(attr_bits) / sizeof(attr_bits[0]))

/*
 * Attributes IBTA (and ib_core's table) requires for cur -> next, minus
 * IB_QP_AV.  Zero for pairs without requirements and for illegal pairs.
 */
static uint32_t required(uint8_t qpt, uint8_t cur, uint8_t next)
{
	bool rc = qpt == IB_UVERBS_QPT_RC, ud = qpt == IB_UVERBS_QPT_UD;

	if (cur == S_RESET && next == S_INIT)
		return M_PKEY | M_PORT | (ud ? M_QKEY : M_ACCESS);
	if (cur == S_INIT && next == S_RTR && !ud)
		return M_PATH_MTU | M_DEST_QPN | M_RQ_PSN |
		       (rc ? M_MAX_DEST_RD | M_MIN_RNR : 0);
	if (cur == S_RTR && next == S_RTS)
		return M_SQ_PSN |
		       (rc ? M_TIMEOUT | M_RETRY | M_RNR_RETRY | M_MAX_RD : 0);
	return 0;
}

static int ufd, bad;

static void die(const char *what, int rv)
{
	fprintf(stderr, "omx_modify_table: %s: %s\n", what, strerror(-rv));
	exit(2);
}

static int modify(uint32_t qp, uint32_t dqpn, uint32_t mask, uint8_t state)
{
	return raw_modify_qp(ufd, qp, mask, state, dqpn);
}

/* RESET, then up the ladder to @target with minimal masks. */
static void bring_to(uint32_t qp, uint32_t dqpn, uint8_t qpt, uint8_t target)
{
	static const uint8_t ladder[] = { S_INIT, S_RTR, S_RTS };
	uint8_t cur = S_RESET;
	int rv;

	rv = modify(qp, dqpn, M_STATE, S_RESET);
	if (rv)
		die("to RESET", rv);
	for (size_t i = 0; i < sizeof(ladder) && target != S_RESET; i++) {
		rv = modify(qp, dqpn, M_STATE | required(qpt, cur, ladder[i]),
			    ladder[i]);
		if (rv)
			die("up the ladder", rv);
		cur = ladder[i];
		if (cur == target || (cur == S_RTS && target >= S_SQD))
			break;
	}
	if (target == S_SQD || target == S_ERR) {
		rv = modify(qp, dqpn, M_STATE, target);
		if (rv)
			die("to SQD/ERR", rv);
	}
}

struct line {
	char text[64];
};

static int cmp_line(const void *a, const void *b)
{
	return strcmp(((const struct line *)a)->text,
		      ((const struct line *)b)->text);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* The case masks of one pair, sorted, without duplicates. */
static size_t case_masks(uint32_t min, uint32_t *out)
{
	size_t n = 0, i, k;

	out[n++] = min;
	for (i = 0; i < NBITS; i++)
		out[n++] = min & attr_bits[i] ? min & ~attr_bits[i] :
						min | attr_bits[i];
	qsort(out, n, sizeof(*out), cmp_u32);
	for (i = 1, k = 1; i < n; i++)
		if (out[i] != out[k - 1])
			out[k++] = out[i];
	return k;
}

static const char *uverbs_path(const char *name, char *buf, size_t len)
{
	if (name[0] == '/')
		return name;
	if (raw_uverbs_path(name, buf, len))
		return buf;
	fprintf(stderr, "omx_modify_table: no uverbs device for %s\n", name);
	exit(2);
}

int main(int argc, char **argv)
{
	struct ib_uverbs_query_qp_resp before, after;
	struct ib_uverbs_create_qp_resp qr[NTYPES];
	static struct line lines[NTYPES * NSTATES * NSTATES * (NBITS + 1)];
	uint32_t pd, cq, masks[NBITS + 1];
	struct raw_ctx_resp ctx;
	size_t t, c, x, m, nm, nl = 0;
	char path[300];
	int rv;

	if (argc != 2) {
		fprintf(stderr, "usage: %s IBDEV|/dev/infiniband/uverbsN\n",
			argv[0]);
		return 2;
	}
	ufd = open(uverbs_path(argv[1], path, sizeof(path)), O_RDWR | O_CLOEXEC);
	if (ufd < 0)
		die(argv[1], -errno);
	rv = raw_get_context(ufd, &ctx);
	if (!rv)
		rv = raw_alloc_pd(ufd, &pd);
	if (!rv)
		rv = raw_create_cq_write(ufd, -1, 16, 0, &cq);
	if (rv)
		die("setup", rv);
	for (t = 0; t < NTYPES; t++) {
		rv = raw_create_qp(ufd, pd, cq, cq, types[t].qpt, 16, &qr[t]);
		if (rv)
			die("create_qp", rv);
	}

	for (t = 0; t < NTYPES; t++) {
		uint32_t qp = qr[t].qp_handle, dqpn = qr[t].qpn;

		for (c = 0; c < NSTATES; c++) {
			for (x = 0; x < NSTATES; x++) {
				uint8_t cur = states[c].state;
				uint8_t next = states[x].state;

				nm = case_masks(M_STATE | required(types[t].qpt,
								   cur, next),
						masks);
				for (m = 0; m < nm; m++) {
					bring_to(qp, dqpn, types[t].qpt, cur);
					raw_query_qp(ufd, qp, &before);
					rv = modify(qp, dqpn, masks[m], next);
					raw_query_qp(ufd, qp, &after);
					if (rv && memcmp(&before, &after,
							 sizeof(after))) {
						fprintf(stderr, "%s %s %s 0x%08x refused (%d) but changed the QP\n",
							types[t].name,
							states[c].name,
							states[x].name,
							masks[m], rv);
						bad++;
					}
					if (!rv && after.qp_state != next) {
						fprintf(stderr, "%s %s %s 0x%08x accepted but the QP is in %u\n",
							types[t].name,
							states[c].name,
							states[x].name,
							masks[m],
							after.qp_state);
						bad++;
					}
					snprintf(lines[nl].text,
						 sizeof(lines[nl].text),
						 "%s %s %s 0x%08x %d",
						 types[t].name, states[c].name,
						 states[x].name, masks[m], -rv);
					nl++;
				}
			}
		}
	}
	qsort(lines, nl, sizeof(lines[0]), cmp_line);
	for (size_t i = 0; i < nl; i++)
		printf("%s\n", lines[i].text);
	for (t = 0; t < NTYPES; t++)
		raw_destroy_qp(ufd, qr[t].qp_handle);
	raw_destroy_cq(ufd, cq, NULL);
	raw_dealloc_pd(ufd, pd);
	close(ufd);
	if (bad)
		fprintf(stderr, "omx_modify_table: %d inconsistent cases\n", bad);
	return bad ? 1 : 0;
}
