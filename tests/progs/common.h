/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Shared helpers of the omx test programs: device lookup by name, the
 * omx driver ioctl, readable event names and a few checked wrappers.
 * Each program exits 0 on success, 1 on a test failure, 2 on bad usage.
 */
#ifndef OMX_TEST_COMMON_H
#define OMX_TEST_COMMON_H

#include <errno.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <infiniband/verbs.h>

#define die(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); \
		      fputc('\n', stderr); exit(1); } while (0)

static inline double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Opens the named device; dies with the list of devices if it is missing. */
static inline struct ibv_context *open_by_name(const char *name)
{
	struct ibv_device **list;
	struct ibv_context *ctx = NULL;
	int i, n;

	list = ibv_get_device_list(&n);
	if (!list)
		die("ibv_get_device_list: %s", strerror(errno));
	for (i = 0; i < n; i++) {
		if (strcmp(ibv_get_device_name(list[i]), name))
			continue;
		ctx = ibv_open_device(list[i]);
		if (!ctx)
			die("ibv_open_device(%s): %s", name, strerror(errno));
		break;
	}
	if (!ctx) {
		fprintf(stderr, "devices:");
		for (i = 0; i < n; i++)
			fprintf(stderr, " %s", ibv_get_device_name(list[i]));
		fputc('\n', stderr);
		die("device %s not found", name);
	}
	ibv_free_device_list(list);
	return ctx;
}

/* Creates an empty file so a scenario script knows we reached a point. */
static inline void touch(const char *path)
{
	FILE *f;

	if (!path)
		return;
	f = fopen(path, "w");
	if (!f)
		die("create %s: %s", path, strerror(errno));
	fclose(f);
}

/* What the test programs vary when they connect an RC QP. */
struct rc_conn {
	uint8_t rd_atomic;	/* max_rd_atomic and max_dest_rd_atomic */
	uint8_t min_rnr_timer;
	uint8_t rnr_retry;
	uint8_t timeout;	/* local ACK timeout exponent */
	uint8_t sgid_index;
};

/*
 * Moves an RC QP from INIT to RTS, connected to dest_qpn at dgid through
 * port 1: path MTU 1024, both PSNs 1, retry_cnt 7.
 */
static inline void rc_to_rts(struct ibv_qp *qp, uint32_t dest_qpn,
			     const union ibv_gid *dgid, const struct rc_conn *c)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_RTR, .path_mtu = IBV_MTU_1024,
		.dest_qp_num = dest_qpn, .rq_psn = 1,
		.max_dest_rd_atomic = c->rd_atomic,
		.min_rnr_timer = c->min_rnr_timer,
		.ah_attr = { .is_global = 1, .port_num = 1,
			     .grh = { .dgid = *dgid, .sgid_index = c->sgid_index,
				      .hop_limit = 1 } },
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_AV |
			  IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
			  IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER))
		die("modify to RTR: %s", strerror(errno));
	a.qp_state = IBV_QPS_RTS;
	a.timeout = c->timeout;
	a.retry_cnt = 7;
	a.rnr_retry = c->rnr_retry;
	a.sq_psn = 1;
	a.max_rd_atomic = c->rd_atomic;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_TIMEOUT |
			  IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
			  IBV_QP_MAX_QP_RD_ATOMIC))
		die("modify to RTS: %s", strerror(errno));
}

/* Moves a UD QP from RESET to RTS with Q_Key qkey and send PSN psn. */
static inline struct ibv_qp *ud_to_rts(struct ibv_qp *qp, uint32_t qkey,
				       uint32_t psn)
{
	struct ibv_qp_attr a = {
		.qp_state = IBV_QPS_INIT, .port_num = 1, .qkey = qkey,
	};

	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			  IBV_QP_PORT | IBV_QP_QKEY))
		die("modify to INIT: %s", strerror(errno));
	a.qp_state = IBV_QPS_RTR;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE))
		die("modify to RTR: %s", strerror(errno));
	a.qp_state = IBV_QPS_RTS;
	a.sq_psn = psn;
	if (ibv_modify_qp(qp, &a, IBV_QP_STATE | IBV_QP_SQ_PSN))
		die("modify to RTS: %s", strerror(errno));
	return qp;
}

#endif
