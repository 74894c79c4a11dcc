// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_uverbs_smoke: drive the rdma_omx kernel module through raw uverbs
 * (write() commands, the CREATE_CQ ioctl and the driver methods), without
 * libibverbs or the provider.  Used by kmod-shim/tests/vm-kmod-*.sh.
 *
 *   omx_uverbs_smoke /dev/infiniband/uverbsN run    all checks, then wait
 *                                                   for a line on stdin,
 *                                                   destroy, exit
 *   omx_uverbs_smoke /dev/infiniband/uverbsN port   print QUERY_DEVICE and
 *                                                   QUERY_PORT, exit
 *   omx_uverbs_smoke /dev/infiniband/uverbsN hold   all checks, then print
 *                                                   async events until
 *                                                   DEVICE_FATAL, check the
 *                                                   fatal eventfd and EIO
 *
 * Build: gcc -O2 -Wall -pthread -I kmod-shim/include/uapi \
 *            -o omx_uverbs_smoke kmod-shim/tests/omx_uverbs_smoke.c
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "omx_raw.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (cond) {							\
		printf("ok   ");					\
	} else {							\
		printf("FAIL ");					\
		failures++;						\
	}								\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

#define CQ_UH 42	/* user handle of the main CQ */
#define CQ2_UH 43	/* a second CQ on the same channel */
#define QP_UH 7		/* user handle raw_create_qp gives every QP */

/* rdma_omx.h: unread completion events per CQ, MR key tag bits. */
#define OMX_CQ_MAX_UNREAD_TEST 16
#define OMX_MR_TAG_BITS_TEST 12

static int ufd;
static struct raw_ctx_resp ctx;

static int query_port_dev(void)
{
	struct ib_uverbs_query_device_resp d = {};
	struct ib_uverbs_query_port_resp p = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_device cmd;
	} cd = { .cmd.response = (uintptr_t)&d };
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_port cmd;
	} cp = { .cmd = { .response = (uintptr_t)&p, .port_num = 1 } };
	int rv;

	rv = raw_write(ufd, IB_USER_VERBS_CMD_QUERY_DEVICE, &cd, sizeof(cd),
		       sizeof(d));
	CHECK(!rv, "QUERY_DEVICE rv=%d", rv);
	printf("DEVICE node_guid=%016llx max_qp=%u max_qp_wr=%u max_sge=%u max_cq=%u max_cqe=%u max_mr=%u max_pd=%u max_mr_size=0x%llx page_size_cap=0x%llx hw_ver=%u vendor_id=%u max_qp_rd_atom=%u max_res_rd_atom=%u atomic_cap=%u max_srq=%u max_srq_wr=%u max_srq_sge=%u max_ah=%u max_mw=%u phys_port_cnt=%u cap_flags=0x%x\n",
	       (unsigned long long)__builtin_bswap64(d.node_guid), d.max_qp,
	       d.max_qp_wr, d.max_sge, d.max_cq, d.max_cqe, d.max_mr,
	       d.max_pd, (unsigned long long)d.max_mr_size,
	       (unsigned long long)d.page_size_cap, d.hw_ver, d.vendor_id,
	       d.max_qp_rd_atom, d.max_res_rd_atom, d.atomic_cap, d.max_srq,
	       d.max_srq_wr, d.max_srq_sge, d.max_ah, d.max_mw, d.phys_port_cnt,
	       d.device_cap_flags);
	rv = raw_write(ufd, IB_USER_VERBS_CMD_QUERY_PORT, &cp, sizeof(cp),
		       sizeof(p));
	CHECK(!rv, "QUERY_PORT rv=%d", rv);
	printf("PORT state=%u phys_state=%u active_mtu=%u max_mtu=%u gid_tbl_len=%u pkey_tbl_len=%u link_layer=%u speed=%u width=%u lid=%u max_msg_sz=%u\n",
	       p.state, p.phys_state, p.active_mtu, p.max_mtu, p.gid_tbl_len,
	       p.pkey_tbl_len, p.link_layer, p.active_speed, p.active_width,
	       p.lid, p.max_msg_sz);
	return rv;
}

/*
 * ALLOC_PD with 8 bytes of driver data, which rdma_omx defines none for:
 * zeros are accepted (and the PD freed again), anything else refused.
 */
static void check_driver_data(void)
{
	struct ib_uverbs_alloc_pd_resp r = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_alloc_pd cmd;
		uint64_t drv;
	} c = { .cmd.response = (uintptr_t)&r };
	int rv;

	rv = raw_write(ufd, IB_USER_VERBS_CMD_ALLOC_PD, &c, sizeof(c),
		       sizeof(r));
	CHECK(!rv, "ALLOC_PD with zero driver data rv=%d", rv);
	if (!rv)
		raw_dealloc_pd(ufd, r.pd_handle);
	c.drv = 1;
	rv = raw_write(ufd, IB_USER_VERBS_CMD_ALLOC_PD, &c, sizeof(c),
		       sizeof(r));
	CHECK(rv == -EOPNOTSUPP,
	      "ALLOC_PD with unknown driver data -> %d (want -EOPNOTSUPP)", rv);
}

/* CQ_NOTIFY with an arbitrary driver_id in the ioctl header. */
static int cq_notify_driver_id(uint32_t cq, uint32_t driver_id)
{
	struct {
		struct ib_uverbs_ioctl_hdr hdr;
		struct ib_uverbs_attr attr;
	} io = {
		.hdr = { .length = sizeof(io), .object_id = UVERBS_OBJECT_CQ,
			 .method_id = OMX_METHOD_CQ_NOTIFY, .num_attrs = 1,
			 .driver_id = driver_id },
		.attr = { .attr_id = OMX_ATTR_CQ_NOTIFY_HANDLE,
			  .flags = UVERBS_ATTR_F_MANDATORY, .data = cq },
	};

	if (ioctl(ufd, RDMA_VERBS_IOCTL, &io))
		return -errno;
	return 0;
}

static int comp_events(int chan, int first_ms, uint64_t uh)
{
	return raw_read_comp_events(chan, first_ms, 300, uh, NULL);
}

/*
 * Completion events.  Below the per-CQ bound (OMX_CQ_MAX_UNREAD events
 * raised since the channel was last seen empty) every request raises
 * exactly one event: the kernel looks at the channel on every 16th event
 * and finds it empty, because the test reads everything before.  cq (a
 * fresh CQ) is used for 3 events and 1000 notify+read pairs, cq2 (fresh
 * too, so its 16-event cycle starts with the rounds) for 500 rounds of 16
 * concurrent requests read at the end of each round, then for a burst the
 * application does not read: exactly 16 events, plus one owed event once
 * the channel was read.  Returns the number of events read per CQ.
 */
#define NOTIFY_THREADS 4
#define NOTIFY_ROUNDS 500	/* NOTIFY_THREADS * 4 = 16 requests per round */

static uint32_t notify_cq;
static int notify_errors;
static pthread_barrier_t round_start, round_done;

static void *notify_thread(void *arg)
{
	for (int r = 0; r < NOTIFY_ROUNDS; r++) {
		pthread_barrier_wait(&round_start);
		for (int i = 0; i < 16 / NOTIFY_THREADS; i++)
			if (raw_cq_notify(ufd, notify_cq))
				__atomic_add_fetch(&notify_errors, 1,
						   __ATOMIC_RELAXED);
		pthread_barrier_wait(&round_done);
	}
	return arg;
}

static void check_comp_events(int chan, uint32_t cq, uint32_t cq2,
			      int *read1, int *read2)
{
	pthread_t th[NOTIFY_THREADS];
	int n, total = 0, rv, bad = 0;

	rv = cq_notify_driver_id(cq, OMX_DRIVER_ID + 1);
	CHECK(rv == -EINVAL, "CQ_NOTIFY wrong driver_id -> %d (want -EINVAL)",
	      rv);
	rv = raw_cq_notify(ufd, cq + 1000);
	CHECK(rv < 0, "CQ_NOTIFY bad handle -> %d", rv);
	n = comp_events(chan, 200, CQ_UH);
	CHECK(n == 0, "no spurious completion event (%d)", n);

	for (int i = 0; i < 3; i++) {
		rv = raw_cq_notify(ufd, cq);
		CHECK(!rv, "CQ_NOTIFY #%d rv=%d", i, rv);
	}
	n = comp_events(chan, 2000, CQ_UH);
	CHECK(n == 3, "completion events read: %d (want 3)", n);
	total += n;

	n = 0;
	for (int i = 0; i < 1000; i++) {
		if (raw_cq_notify(ufd, cq))
			break;
		n += raw_read_comp_events(chan, 2000, 0, CQ_UH, NULL);
	}
	n += comp_events(chan, 300, CQ_UH);
	CHECK(n == 1000, "1000 notifies, each read at once: %d events", n);
	total += n;
	*read1 = total;

	total = 0;
	notify_cq = cq2;
	pthread_barrier_init(&round_start, NULL, NOTIFY_THREADS + 1);
	pthread_barrier_init(&round_done, NULL, NOTIFY_THREADS + 1);
	for (int i = 0; i < NOTIFY_THREADS; i++)
		pthread_create(&th[i], NULL, notify_thread, NULL);
	n = 0;
	for (int r = 0; r < NOTIFY_ROUNDS; r++) {
		int got = 0;

		pthread_barrier_wait(&round_start);
		pthread_barrier_wait(&round_done);
		while (got < 16) {
			int k = raw_read_comp_events(chan, 3000, 0, CQ2_UH,
						     NULL);

			if (!k)
				break;
			got += k;
		}
		bad += got != 16;
		n += got;
	}
	for (int i = 0; i < NOTIFY_THREADS; i++)
		pthread_join(th[i], NULL);
	n += comp_events(chan, 300, CQ2_UH);
	CHECK(n == NOTIFY_ROUNDS * 16 && !notify_errors && !bad,
	      "%d rounds of 16 concurrent notifies: %d events, %d errors, %d short rounds",
	      NOTIFY_ROUNDS, n, notify_errors, bad);
	total += n;

	/* Nobody reads: 16 events, the rest folded into one owed event. */
	for (int i = 0; i < 1000; i++)
		if (raw_cq_notify(ufd, cq2))
			break;
	usleep(1000 * 1000);
	n = raw_read_comp_events(chan, 0, 0, CQ2_UH, NULL);
	CHECK(n == OMX_CQ_MAX_UNREAD_TEST,
	      "1000 notifies unread: %d events on the channel (want %d)", n,
	      OMX_CQ_MAX_UNREAD_TEST);
	total += n;
	n = comp_events(chan, 3000, CQ2_UH);
	CHECK(n == 1, "then one owed event once read: %d", n);
	total += n;
	*read2 = total;
}

static int read_async_of(int afd, int ms, uint32_t want_type, uint64_t elem)
{
	uint32_t type;
	uint64_t el;
	int n = 0;

	while (!raw_read_async_event(afd, ms, &type, &el)) {
		if (type == want_type && el == elem)
			n++;
		else
			printf("     other async event %u element %llu\n", type,
			       (unsigned long long)el);
		ms = 300;
	}
	return n;
}

/*
 * Counts the QP_UH error events read until @max of them came or none
 * came for @ms (300 ms once one came).
 */
static int read_qp_events(int afd, int ms, int max)
{
	uint32_t type;
	uint64_t el;
	int n = 0;

	while (n < max && !raw_read_async_event(afd, ms, &type, &el)) {
		n += el == QP_UH && type >= EV_QP_FATAL &&
		     type <= EV_QP_ACCESS_ERR;
		ms = 300;
	}
	return n;
}

static void check_cq_error(int afd, uint32_t cq)
{
	int rv, n;

	rv = raw_cq_error(ufd, cq);
	CHECK(!rv, "CQ_ERROR rv=%d", rv);
	rv = raw_cq_error(ufd, cq);
	CHECK(!rv, "CQ_ERROR again rv=%d", rv);
	rv = raw_cq_error(ufd, cq + 1000);
	CHECK(rv < 0, "CQ_ERROR bad handle -> %d", rv);
	n = read_async_of(afd, 2000, EV_CQ_ERR, CQ_UH);
	CHECK(n == 1, "EV_CQ_ERR once per CQ: %d", n);
}

static uint32_t qp_state(uint32_t qp)
{
	struct ib_uverbs_query_qp_resp q;

	if (raw_query_qp(ufd, qp, &q))
		return 99;
	return q.qp_state;
}

/* QP_EVENT succeeds and leaves the shadow in @want. */
static void qp_event_expect(uint32_t qp, uint32_t type, uint32_t epoch,
			    uint32_t want, const char *what)
{
	int rv = raw_qp_event(ufd, qp, type, epoch);

	CHECK(!rv && qp_state(qp) == want,
	      "QP_EVENT type %u epoch %u (%s): rv=%d state=%u (want %u)",
	      type, epoch, what, rv, qp_state(qp), want);
}

/* The RC QP @qp is in RTS and was never reset (epoch 0). */
static void check_qp_events(int afd, uint32_t qp)
{
	static const uint32_t ev[] = { 0, EV_QP_FATAL,
		EV_QP_REQ_ERR, EV_QP_ACCESS_ERR };
	int rv, n, total;
	uint32_t epoch;

	rv = raw_qp_event(ufd, qp, OMX_QP_EVENT_MAX + 1, 0);
	CHECK(rv == -EINVAL, "QP_EVENT unknown type -> %d (want -EINVAL)", rv);
	rv = raw_qp_event(ufd, qp, 0xffffffff, 0);
	CHECK(rv == -EINVAL, "QP_EVENT type 0xffffffff -> %d", rv);
	rv = raw_qp_event(ufd, qp + 1000, OMX_QP_EVENT_FATAL, 0);
	CHECK(rv < 0, "QP_EVENT bad handle -> %d", rv);
	qp_event_expect(qp, OMX_QP_EVENT_FATAL, 1, S_RTS, "future, ignored");
	CHECK(read_async_of(afd, 300, EV_QP_FATAL, QP_UH) == 0,
	      "no event for a stale epoch");

	for (int t = OMX_QP_EVENT_FATAL; t <= OMX_QP_EVENT_MAX; t++) {
		qp_event_expect(qp, t, 0, S_ERR, "current");
		qp_event_expect(qp, t, 0, S_ERR, "again");
		n = read_async_of(afd, 2000, ev[t], QP_UH);
		CHECK(n == 1, "event %u raised once in the epoch: %d", ev[t],
		      n);
	}

	rv = raw_modify_qp(ufd, qp, M_STATE, S_RESET, 0);
	CHECK(!rv, "ERR -> RESET rv=%d", rv);
	qp_event_expect(qp, OMX_QP_EVENT_FATAL, 0, S_RESET,
			"epoch 0 after a reset, ignored");
	qp_event_expect(qp, OMX_QP_EVENT_NONE, 1, S_ERR, "NONE, current");
	CHECK(read_async_of(afd, 300, EV_QP_FATAL, QP_UH) == 0,
	      "NONE raises nothing");
	rv = raw_modify_qp(ufd, qp, M_STATE, S_RESET, 0);
	rv |= raw_modify_qp(ufd, qp, M_STATE, S_RESET, 0);
	CHECK(!rv, "ERR -> RESET -> RESET rv=%d", rv);
	qp_event_expect(qp, OMX_QP_EVENT_FATAL, 2, S_RESET,
			"RESET -> RESET counted an epoch, stale");
	qp_event_expect(qp, OMX_QP_EVENT_FATAL, 3, S_ERR, "current");
	n = read_async_of(afd, 2000, EV_QP_FATAL, QP_UH);
	CHECK(n == 1, "QP_FATAL in the new epoch: %d", n);

	/*
	 * Lifetime budget: 3 + 1 events so far, 64 in all.  Each epoch's
	 * events are read before the next epoch raises its own: the event
	 * work delivers what is pending when it runs, so a slow worker would
	 * otherwise deliver one event for two epochs' raises of a type.
	 */
	total = 4;
	for (epoch = 4; epoch < 40; epoch++) {
		int want = OMX_QP_MAX_EVENTS - total;

		if (want > OMX_QP_EVENT_MAX)
			want = OMX_QP_EVENT_MAX;
		raw_modify_qp(ufd, qp, M_STATE, S_RESET, 0);
		for (int t = OMX_QP_EVENT_FATAL; t <= OMX_QP_EVENT_MAX; t++)
			raw_qp_event(ufd, qp, t, epoch);
		total += want ? read_qp_events(afd, 5000, want) :
				 read_qp_events(afd, 300, OMX_QP_MAX_EVENTS);
	}
	total += read_qp_events(afd, 1000, OMX_QP_MAX_EVENTS);
	CHECK(total == OMX_QP_MAX_EVENTS,
	      "events of one QP's life: %d (want %d)", total,
	      OMX_QP_MAX_EVENTS);
	rv = raw_modify_qp(ufd, qp, M_STATE, S_RESET, 0);
	CHECK(!rv, "back to RESET rv=%d", rv);
}

struct bad_value {
	const char *what;
	uint32_t mask;
	size_t off;		/* field of ib_uverbs_modify_qp */
	unsigned int len;
	uint32_t bad, good;
};

#define F(field) offsetof(struct ib_uverbs_modify_qp, field), \
	sizeof(((struct ib_uverbs_modify_qp *)0)->field)

/* Legal in SQD -> SQD for RC, except for the bad value. */
static const struct bad_value sqd_values[] = {
	{ "timeout", M_TIMEOUT, F(timeout), 32, 31 },
	{ "retry_cnt", M_RETRY, F(retry_cnt), 8, 6 },
	{ "rnr_retry", M_RNR_RETRY, F(rnr_retry), 8, 6 },
	{ "min_rnr_timer", M_MIN_RNR, F(min_rnr_timer), 32, 31 },
	{ "max_rd_atomic", M_MAX_RD, F(max_rd_atomic), 17, 16 },
	{ "max_dest_rd_atomic", M_MAX_DEST_RD, F(max_dest_rd_atomic), 17, 16 },
	{ "access_flags", M_ACCESS, F(qp_access_flags), 0x20, 0x1f },
	{ "pkey_index", M_PKEY, F(pkey_index), 1, 0 },
	{ "port", M_PORT, F(port_num), 2, 1 },
	{ "path_mig_state", M_PATH_MIG, F(path_mig_state), 3, 0 },
};

/* Legal in INIT -> RTR for RC, except for the bad value. */
static const struct bad_value rtr_values[] = {
	{ "path_mtu", 0, F(path_mtu), 6, 3 },
	{ "path_mtu", 0, F(path_mtu), 0, 3 },
	{ "dest_qp_num", 0, F(dest_qp_num), 1 << 24, 0xffffff },
};

#undef F

/*
 * modify_qp @m with the field of @v set to @val; returns the verdict and
 * whether the QP is exactly as before when refused.
 */
static int modify_value(uint32_t qp, struct ib_uverbs_modify_qp m,
			const struct bad_value *v, uint32_t val, bool *same)
{
	struct ib_uverbs_query_qp_resp before, after;
	int rv;

	memcpy((char *)&m + v->off, &val, v->len);
	raw_query_qp(ufd, qp, &before);
	rv = raw_modify_qp_cmd(ufd, &m);
	raw_query_qp(ufd, qp, &after);
	*same = !memcmp(&before, &after, sizeof(after));
	return rv;
}

static void check_values(uint32_t qp, const struct ib_uverbs_modify_qp *base,
			 const struct bad_value *v, size_t n, bool apply_good)
{
	struct ib_uverbs_modify_qp m;
	bool same;
	int rv;

	for (size_t i = 0; i < n; i++) {
		m = *base;
		m.attr_mask |= v[i].mask;
		rv = modify_value(qp, m, &v[i], v[i].bad, &same);
		CHECK(rv == -EINVAL && same,
		      "MODIFY_QP %s %u in state %u -> %d, QP unchanged",
		      v[i].what, v[i].bad, base->qp_state, rv);
		if (!apply_good)
			continue;
		rv = modify_value(qp, m, &v[i], v[i].good, &same);
		CHECK(!rv, "MODIFY_QP %s %u in state %u rv=%d", v[i].what,
		      v[i].good, base->qp_state, rv);
	}
}

/*
 * modify_qp refusals of an RC QP in RTS: bad values (through SQD -> SQD,
 * which accepts almost every attribute), false current states, illegal
 * transitions and masks.  Each leaves the QP exactly as it was.
 */
static void check_modify_refusals(uint32_t qp, uint32_t dqpn)
{
	static const struct {
		const char *what;
		uint32_t mask;
		uint8_t state, cur;
	} bad[] = {
		{ "state 7", M_STATE, 7, 0 },
		{ "cur_state RESET claimed", M_STATE | M_CUR_STATE, S_RTS,
		  S_RESET },
		{ "cur_state SQD claimed", M_STATE | M_CUR_STATE, S_RTS, S_SQD },
		{ "cur_state 7", M_STATE | M_CUR_STATE, S_RTS, 7 },
		{ "RTS -> RTR", M_STATE, S_RTR, 0 },
		{ "RTS -> INIT", M_STATE, S_INIT, 0 },
		{ "RTS -> RTS with SQ_PSN", M_STATE | M_SQ_PSN, S_RTS, 0 },
		{ "RTS -> RTS with PATH_MTU", M_STATE | M_PATH_MTU, S_RTS, 0 },
		{ "RTS -> RTS with a rate limit", M_STATE | (1u << 25), S_RTS,
		  0 },
		{ "RTS -> SQD with ALT_PATH", M_STATE | M_ALT_PATH, S_SQD, 0 },
	};
	struct ib_uverbs_query_qp_resp before, after;
	struct ib_uverbs_modify_qp m;
	size_t i;
	int rv;

	raw_query_qp(ufd, qp, &before);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_qp_attr_defaults(&m, qp, dqpn);
		m.attr_mask = bad[i].mask;
		m.qp_state = bad[i].state;
		m.cur_qp_state = bad[i].cur;
		rv = raw_modify_qp_cmd(ufd, &m);
		raw_query_qp(ufd, qp, &after);
		CHECK(rv < 0 && !memcmp(&before, &after, sizeof(after)),
		      "MODIFY_QP %s -> %d (%s), QP unchanged", bad[i].what, rv,
		      strerror(-rv));
	}

	rv = raw_modify_qp(ufd, qp, M_STATE, S_SQD, 0);
	CHECK(!rv, "MODIFY_QP RTS -> SQD rv=%d", rv);
	raw_qp_attr_defaults(&m, qp, dqpn);
	m.attr_mask = M_STATE;
	m.qp_state = S_SQD;
	check_values(qp, &m, sqd_values,
		     sizeof(sqd_values) / sizeof(sqd_values[0]), true);
	rv = raw_modify_qp(ufd, qp, M_STATE, S_RTS, 0);
	CHECK(!rv, "MODIFY_QP SQD -> RTS rv=%d", rv);

	/* An optional attribute without a state change (RTS -> RTS). */
	raw_qp_attr_defaults(&m, qp, dqpn);
	m.attr_mask = M_MIN_RNR;
	m.min_rnr_timer = 20;
	rv = raw_modify_qp_cmd(ufd, &m);
	raw_query_qp(ufd, qp, &after);
	CHECK(!rv && after.min_rnr_timer == 20 && after.qp_state == S_RTS,
	      "MODIFY_QP min_rnr_timer alone in RTS rv=%d", rv);
	/* SQE is a current state the kernel may not have seen, for UD/UC. */
	raw_qp_attr_defaults(&m, qp, dqpn);
	m.attr_mask = M_STATE | M_CUR_STATE;
	m.qp_state = S_RTS;
	m.cur_qp_state = S_SQE;
	rv = raw_modify_qp_cmd(ufd, &m);
	CHECK(rv == -EINVAL, "RC SQE -> RTS claimed with CUR_STATE -> %d", rv);
}

static void check_modify(uint32_t rc, uint32_t ud, uint32_t ud_qpn)
{
	struct ib_uverbs_query_qp_resp qq;
	int rv;

	rv = raw_modify_qp(ufd, rc, M_STATE, S_RTR, 0);
	CHECK(rv == -EINVAL, "MODIFY_QP RESET->RTR -> %d (want -EINVAL)", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE, S_ERR, 0);
	CHECK(rv == -EINVAL, "MODIFY_QP RESET->ERR -> %d (want -EINVAL)", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE | M_PKEY | M_PORT, S_INIT, 0);
	CHECK(rv == -EINVAL, "MODIFY_QP RESET->INIT without ACCESS -> %d", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE | M_PKEY | M_PORT | M_ACCESS |
			   M_SQ_PSN, S_INIT, 0);
	CHECK(rv == -EINVAL, "MODIFY_QP RESET->INIT with SQ_PSN -> %d", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE | M_PKEY | M_PORT | M_ACCESS,
			   S_INIT, 0);
	CHECK(!rv, "MODIFY_QP RESET->INIT rv=%d", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE | M_AV | M_PATH_MTU | M_DEST_QPN |
			   M_RQ_PSN | M_MAX_DEST_RD | M_MIN_RNR, S_RTR, ud_qpn);
	CHECK(rv < 0, "MODIFY_QP with IB_QP_AV -> %d (%s)", rv, strerror(-rv));
	rv = raw_modify_qp(ufd, rc, M_STATE | M_PATH_MTU | M_DEST_QPN |
			   M_RQ_PSN | M_MAX_DEST_RD, S_RTR, ud_qpn);
	CHECK(rv == -EINVAL, "MODIFY_QP INIT->RTR without MIN_RNR -> %d", rv);
	{
		struct ib_uverbs_modify_qp m;

		raw_qp_attr_defaults(&m, rc, ud_qpn);
		m.attr_mask = M_STATE | M_PATH_MTU | M_DEST_QPN | M_RQ_PSN |
			      M_MAX_DEST_RD | M_MIN_RNR;
		m.qp_state = S_RTR;
		check_values(rc, &m, rtr_values,
			     sizeof(rtr_values) / sizeof(rtr_values[0]), false);
	}
	rv = raw_modify_qp(ufd, rc, M_STATE | M_PATH_MTU | M_DEST_QPN |
			   M_RQ_PSN | M_MAX_DEST_RD | M_MIN_RNR, S_RTR, ud_qpn);
	CHECK(!rv, "MODIFY_QP INIT->RTR rv=%d", rv);
	rv = raw_modify_qp(ufd, rc, M_STATE | M_TIMEOUT | M_RETRY |
			   M_RNR_RETRY | M_SQ_PSN | M_MAX_RD, S_RTS, 0);
	CHECK(!rv, "MODIFY_QP RTR->RTS rv=%d", rv);
	rv = raw_query_qp(ufd, rc, &qq);
	CHECK(!rv && qq.qp_state == S_RTS && qq.dest_qp_num == ud_qpn &&
	      qq.sq_psn == 0x654321 && qq.rq_psn == 0x123456 &&
	      qq.path_mtu == 3 && qq.timeout == 14 && qq.max_send_wr == 128,
	      "QUERY_QP rv=%d state=%u dqpn=0x%x sq_psn=0x%x rq_psn=0x%x mtu=%u",
	      rv, qq.qp_state, qq.dest_qp_num, qq.sq_psn, qq.rq_psn,
	      qq.path_mtu);
	check_modify_refusals(rc, ud_qpn);

	rv = raw_modify_qp(ufd, ud, M_STATE | M_PKEY | M_PORT | M_QKEY, S_INIT,
			   0);
	CHECK(!rv, "MODIFY_QP UD RESET->INIT rv=%d", rv);
	rv = raw_modify_qp(ufd, ud, M_STATE, S_RTR, 0);
	CHECK(!rv, "MODIFY_QP UD INIT->RTR rv=%d", rv);
	rv = raw_modify_qp(ufd, ud, M_STATE | M_SQ_PSN, S_RTS, 0);
	CHECK(!rv, "MODIFY_QP UD RTR->RTS rv=%d", rv);
	{
		struct ib_uverbs_modify_qp m;

		raw_qp_attr_defaults(&m, ud, 0);
		m.attr_mask = M_STATE | M_CUR_STATE;
		m.qp_state = S_RTS;
		m.cur_qp_state = S_SQE;
		rv = raw_modify_qp_cmd(ufd, &m);
		CHECK(!rv && qp_state(ud) == S_RTS,
		      "UD SQE -> RTS (the engine's SQE) rv=%d", rv);
	}
}

/* One page-aligned mapping of @pages pages with @prot. */
static char *map_pages(int pages, int prot)
{
	void *p = mmap(NULL, pages * 4096, prot, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void check_mr(uint32_t pd, struct ib_uverbs_reg_mr_resp *mr,
		     struct ib_uverbs_reg_mr_resp *mr2, void *buf)
{
	const uint32_t lw = IB_UVERBS_ACCESS_LOCAL_WRITE;
	const uint32_t rw = lw | IB_UVERBS_ACCESS_REMOTE_WRITE;
	const uint32_t odp = IB_UVERBS_ACCESS_ON_DEMAND;
	struct ib_uverbs_reg_mr_resp r, keys[8];
	uint32_t tags = 0, same = 0;
	char *p;
	int rv;

	rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 1 << 16,
			rw | IB_UVERBS_ACCESS_REMOTE_READ, mr);
	CHECK(!rv && mr->lkey == mr->rkey &&
	      mr->lkey >> OMX_MR_TAG_BITS_TEST >= 1,
	      "REG_MR rv=%d lkey=0x%08x rkey=0x%08x (index %u tag 0x%03x)", rv,
	      mr->lkey, mr->rkey, mr->lkey >> OMX_MR_TAG_BITS_TEST,
	      mr->lkey & ((1 << OMX_MR_TAG_BITS_TEST) - 1));
	rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 4096,
			IB_UVERBS_ACCESS_MW_BIND, &r);
	CHECK(!rv, "REG_MR MW_BIND rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 4096, lw, mr2);
	CHECK(!rv && mr2->lkey != mr->lkey, "REG_MR #2 rv=%d lkey=0x%08x", rv,
	      mr2->lkey);

	/* Random 12-bit tags: 8 keys neither all alike nor sequential. */
	for (int i = 0; i < 8; i++) {
		rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 4096, lw, &keys[i]);
		if (rv)
			break;
		tags |= keys[i].lkey & 0xfff;
		if (i && (keys[i].lkey & 0xfff) ==
			 ((keys[i - 1].lkey + 1) & 0xfff))
			same++;
		if (i && keys[i].lkey >> 12 != (keys[i - 1].lkey >> 12) + 1)
			same += 100;
	}
	CHECK(!rv && same < 3 && tags,
	      "8 keys: consecutive indexes, random tags (%d)", same);
	for (int i = 0; i < 8; i++)
		raw_dereg_mr(ufd, keys[i].mr_handle);

	/* The range must be mapped with the rights the flags imply. */
	p = map_pages(3, PROT_READ | PROT_WRITE);
	munmap(p, 3 * 4096);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 3 * 4096, lw, &r);
	CHECK(rv == -EFAULT, "REG_MR unmapped range -> %d (want -EFAULT)", rv);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 3 * 4096, lw | odp, &r);
	CHECK(!rv, "REG_MR unmapped range, ON_DEMAND rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);

	p = map_pages(2, PROT_READ);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 2 * 4096, rw, &r);
	CHECK(rv == -EFAULT, "REG_MR PROT_READ with REMOTE_WRITE -> %d", rv);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 2 * 4096,
			lw | IB_UVERBS_ACCESS_REMOTE_ATOMIC, &r);
	CHECK(rv == -EFAULT, "REG_MR PROT_READ with REMOTE_ATOMIC -> %d", rv);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 2 * 4096,
			IB_UVERBS_ACCESS_REMOTE_READ, &r);
	CHECK(!rv, "REG_MR PROT_READ with REMOTE_READ rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);
	munmap(p, 2 * 4096);

	p = map_pages(1, PROT_NONE);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 4096,
			IB_UVERBS_ACCESS_REMOTE_READ, &r);
	CHECK(rv == -EFAULT, "REG_MR PROT_NONE -> %d", rv);
	munmap(p, 4096);

	p = map_pages(3, PROT_READ | PROT_WRITE);
	munmap(p + 4096, 4096);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 3 * 4096, lw, &r);
	CHECK(rv == -EFAULT, "REG_MR range with a hole -> %d", rv);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p + 100, 3996, lw, &r);
	CHECK(!rv, "REG_MR unaligned range in the first page rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p + 4000, 200, lw, &r);
	CHECK(rv == -EFAULT, "REG_MR range running into the hole -> %d", rv);
	munmap(p, 4096);
	munmap(p + 2 * 4096, 4096);

	/* Two adjacent mappings with different rights, read-only use. */
	p = map_pages(2, PROT_READ | PROT_WRITE);
	mprotect(p + 4096, 4096, PROT_READ);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 2 * 4096,
			IB_UVERBS_ACCESS_REMOTE_READ, &r);
	CHECK(!rv, "REG_MR across two VMAs, read-only rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);
	rv = raw_reg_mr(ufd, pd, (uintptr_t)p, 2 * 4096, lw, &r);
	CHECK(rv == -EFAULT, "REG_MR across two VMAs, one read-only -> %d",
	      rv);
	munmap(p, 2 * 4096);

	rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 0, lw, &r);
	CHECK(rv == -EINVAL, "REG_MR length 0 -> %d (want -EINVAL)", rv);
	rv = raw_reg_mr(ufd, pd, ~0ULL - 4095, 8192, lw, &r);
	CHECK(rv == -EINVAL, "REG_MR wrapping range -> %d (want -EINVAL)", rv);
	rv = raw_reg_mr(ufd, pd, 0x7fffffff0000ULL, 1ULL << 40, lw, &r);
	CHECK(rv == -EFAULT, "REG_MR huge range -> %d (want -EFAULT)", rv);
	rv = raw_reg_mr(ufd, pd, 0, ~0ULL, lw | odp, &r);
	CHECK(!rv, "REG_MR implicit ODP (0, U64_MAX) rv=%d", rv);
	if (!rv)
		raw_dereg_mr(ufd, r.mr_handle);
}

/* The uverbs file's RDMA device name, for its sysfs attributes. */
static const char *ibdev_of(const char *uverbs, char *out, size_t len)
{
	const char *base = strrchr(uverbs, '/');
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/infiniband_verbs/%s/ibdev",
		 base ? base + 1 : uverbs);
	f = fopen(path, "r");
	out[0] = 0;
	if (f) {
		if (!fgets(out, len, f))
			out[0] = 0;
		fclose(f);
	}
	out[strcspn(out, "\n")] = 0;
	return out;
}

/* MWs uid 0 holds on @ibdev (the last column of omx_users), -1 if none. */
static int root_mws(const char *ibdev)
{
	int uid, c[7], n = -1;
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "/sys/class/infiniband/%s/omx_users",
		 ibdev);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fscanf(f, "%d %d %d %d %d %d %d %d", &uid, &c[0], &c[1], &c[2],
		      &c[3], &c[4], &c[5], &c[6]) == 8)
		if (!uid)
			n = c[6];
	fclose(f);
	return n;
}

static int mw_param(const char *val, char *old, size_t len)
{
	const char *path = "/sys/module/rdma_omx/parameters/max_mws_per_user";
	FILE *f;
	int ok;

	if (old) {
		f = fopen(path, "r");
		ok = f && fgets(old, len, f);
		if (f)
			fclose(f);
		if (!ok)
			return -1;
	}
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = fputs(val, f) >= 0;
	return !fclose(f) && ok ? 0 : -1;
}

/*
 * Memory windows: rkeys from the MR key space, never an MR's index; the
 * device caps; the PD held by its MWs; the per-user limit (@limit, in
 * "run" mode only: the module parameter is global).  Leaves one MW of
 * each type (on a PD of their own) for close, kill -9 or removal to free.
 */
static void check_mw(const char *uverbs, uint32_t pd, uint32_t mr_lkey,
		     uint32_t mr2_lkey, void *buf, bool limit)
{
	const uint32_t caps = IB_UVERBS_DEVICE_MEM_WINDOW |
			      IB_UVERBS_DEVICE_MEM_WINDOW_TYPE_2A |
			      IB_UVERBS_DEVICE_MEM_WINDOW_TYPE_2B;
	struct ib_uverbs_query_device_resp d = {};
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_device cmd;
	} cd = { .cmd.response = (uintptr_t)&d };
	struct ib_uverbs_alloc_mw_resp mw[4], r, extra[3];
	struct ib_uverbs_reg_mr_resp mr[4];
	uint32_t mr_idx[6], pd2, bad = 0;
	char dev[64], old[32], val[16];
	uint64_t drv = 0;
	int rv, held;

	rv = raw_write(ufd, IB_USER_VERBS_CMD_QUERY_DEVICE, &cd, sizeof(cd),
		       sizeof(d));
	CHECK(!rv && d.max_mw > 0 && (d.device_cap_flags & caps) == caps,
	      "QUERY_DEVICE max_mw=%u cap_flags=0x%x (want MEM_WINDOW, TYPE_2A, TYPE_2B)",
	      d.max_mw, d.device_cap_flags);

	/* MRs and MWs interleaved: the MWs' indexes are never an MR's. */
	mr_idx[4] = mr_lkey >> OMX_MR_TAG_BITS_TEST;
	mr_idx[5] = mr2_lkey >> OMX_MR_TAG_BITS_TEST;
	for (int i = 0; i < 4; i++) {
		rv = raw_reg_mr(ufd, pd, (uintptr_t)buf, 4096,
				IB_UVERBS_ACCESS_MW_BIND |
				IB_UVERBS_ACCESS_LOCAL_WRITE |
				IB_UVERBS_ACCESS_REMOTE_READ, &mr[i]);
		mr_idx[i] = rv ? 0 : mr[i].lkey >> OMX_MR_TAG_BITS_TEST;
		CHECK(!rv, "REG_MR MW_BIND|LOCAL_WRITE|REMOTE_READ rv=%d lkey=0x%08x",
		      rv, mr[i].lkey);
		rv = raw_alloc_mw(ufd, pd, i % 2 ? 2 : 1, &mw[i]);
		CHECK(!rv && mw[i].rkey >= 4096,
		      "ALLOC_MW type %d rv=%d rkey=0x%08x (index %u)",
		      i % 2 ? 2 : 1, rv, mw[i].rkey,
		      mw[i].rkey >> OMX_MR_TAG_BITS_TEST);
	}
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < 6; j++)
			bad += mw[i].rkey >> OMX_MR_TAG_BITS_TEST == mr_idx[j];
		for (int j = 0; j < i; j++)
			bad += mw[i].rkey >> OMX_MR_TAG_BITS_TEST ==
			       mw[j].rkey >> OMX_MR_TAG_BITS_TEST;
	}
	CHECK(!bad, "MW key indexes differ from every MR's and each other's (%u clashes)",
	      bad);
	for (int i = 0; i < 4; i++)
		raw_dereg_mr(ufd, mr[i].mr_handle);

	rv = raw_alloc_mw(ufd, pd, 3, &r);
	CHECK(rv == -EINVAL, "ALLOC_MW type 3 -> %d (want -EINVAL)", rv);
	rv = raw_alloc_mw(ufd, pd, 0, &r);
	CHECK(rv == -EINVAL, "ALLOC_MW type 0 -> %d (want -EINVAL)", rv);
	rv = raw_alloc_mw(ufd, 0xdead, 1, &r);
	CHECK(rv < 0, "ALLOC_MW on no PD -> %d", rv);
	rv = raw_alloc_mw_drv(ufd, pd, 1, &drv, &r);
	CHECK(!rv, "ALLOC_MW with zero driver data rv=%d", rv);
	if (!rv)
		raw_dealloc_mw(ufd, r.mw_handle);
	drv = 1;
	rv = raw_alloc_mw_drv(ufd, pd, 1, &drv, &r);
	CHECK(rv == -EOPNOTSUPP,
	      "ALLOC_MW with unknown driver data -> %d (want -EOPNOTSUPP)", rv);

	rv = raw_dealloc_mw(ufd, mw[0].mw_handle);
	CHECK(!rv, "DEALLOC_MW type 1 rv=%d", rv);
	rv = raw_dealloc_mw(ufd, mw[0].mw_handle);
	CHECK(rv < 0, "DEALLOC_MW twice -> %d", rv);
	rv = raw_dealloc_mw(ufd, mw[1].mw_handle);
	CHECK(!rv, "DEALLOC_MW type 2 rv=%d", rv);

	/* An MW holds its PD. */
	rv = raw_alloc_pd(ufd, &pd2);
	CHECK(!rv, "ALLOC_PD for an MW rv=%d", rv);
	rv = raw_alloc_mw(ufd, pd2, 2, &r);
	CHECK(!rv, "ALLOC_MW on it rv=%d", rv);
	rv = raw_dealloc_pd(ufd, pd2);
	CHECK(rv == -EBUSY, "DEALLOC_PD under an MW -> %d (want -EBUSY)", rv);
	raw_dealloc_mw(ufd, r.mw_handle);
	rv = raw_dealloc_pd(ufd, pd2);
	CHECK(!rv, "DEALLOC_PD once its MW is gone rv=%d", rv);

	/*
	 * One MW of each type on a PD of their own stay for close, kill -9
	 * or removal (main deallocates its PD at the end).
	 */
	raw_dealloc_mw(ufd, mw[2].mw_handle);
	raw_dealloc_mw(ufd, mw[3].mw_handle);
	rv = raw_alloc_pd(ufd, &pd2);
	CHECK(!rv, "ALLOC_PD for the MWs left to close rv=%d", rv);
	for (int i = 0; i < 2; i++) {
		rv = raw_alloc_mw(ufd, pd2, 1 + i, &r);
		CHECK(!rv, "ALLOC_MW type %d left to close rv=%d", 1 + i, rv);
	}
	ibdev_of(uverbs, dev, sizeof(dev));
	held = root_mws(dev);
	if (!limit || geteuid())
		return;
	CHECK(held >= 2, "omx_users: uid 0 holds %d MWs on %s", held, dev);
	snprintf(val, sizeof(val), "%d\n", held + 2);
	rv = mw_param(val, old, sizeof(old));
	CHECK(!rv, "max_mws_per_user set to %d (was %.*s)", held + 2,
	      (int)strcspn(old, "\n"), old);
	if (rv)
		return;
	for (int i = 0; i < 3; i++) {
		rv = raw_alloc_mw(ufd, pd, 1 + i % 2, &extra[i]);
		CHECK(i < 2 ? !rv : rv == -EDQUOT, "ALLOC_MW %d of %d -> %d",
		      held + i + 1, held + 2, rv);
	}
	for (int i = 0; i < 2; i++)
		raw_dealloc_mw(ufd, extra[i].mw_handle);
	rv = raw_alloc_mw(ufd, pd, 1, &r);
	CHECK(!rv, "ALLOC_MW after two were freed rv=%d", rv);
	if (!rv)
		raw_dealloc_mw(ufd, r.mw_handle);
	CHECK(!mw_param(old, NULL, 0), "max_mws_per_user restored");
	CHECK(root_mws(dev) == held, "omx_users: uid 0 holds %d MWs again",
	      held);
}

static void check_fatal_fd(int efd)
{
	int pfd[2], rv;

	rv = raw_ctx_fatal_fd(ufd, -1);
	CHECK(rv == -EBADF, "CTX_FATAL_FD -1 -> %d (want -EBADF)", rv);
	if (pipe(pfd))
		return;
	rv = raw_ctx_fatal_fd(ufd, pfd[0]);
	CHECK(rv == -EINVAL, "CTX_FATAL_FD pipe -> %d (want -EINVAL)", rv);
	close(pfd[0]);
	close(pfd[1]);
	rv = raw_ctx_fatal_fd(ufd, efd);
	CHECK(!rv, "CTX_FATAL_FD eventfd rv=%d", rv);
	rv = raw_ctx_fatal_fd(ufd, efd);
	CHECK(rv == -EBUSY, "CTX_FATAL_FD twice -> %d (want -EBUSY)", rv);
}

static bool eventfd_signalled(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t v = 0;

	if (poll(&p, 1, ms) != 1 || read(efd, &v, sizeof(v)) != sizeof(v))
		return false;
	return v > 0;
}

/*
 * Basic SRQs: every attribute check, the SRQ types and driver data
 * rdma_omx refuses, QPs of each type on an SRQ (their receive attributes
 * ignored and reported as 0) and the core's -EBUSY while a QP uses one.
 * Leaves an SRQ with an RC QP on it in *srq and *qp, for restrack and the
 * cleanup at kill -9 and device removal.
 */
static void check_srq(uint32_t pd, uint32_t cq, uint32_t *srq, uint32_t *qp)
{
	static const struct {
		uint32_t wr, sge, limit;
		const char *what;
	} bad[] = {
		{ 0, 1, 0, "max_wr 0" },
		{ 16385, 1, 0, "max_wr 16385" },
		{ 0xffffffff, 1, 0, "max_wr 2^32-1" },
		{ 16, 0, 0, "max_sge 0" },
		{ 16, 9, 0, "max_sge 9" },
		{ 16, 1, 17, "srq_limit 17 > max_wr 16" },
		{ 16, 1, 0xffffffff, "srq_limit 2^32-1" },
	};
	struct ib_uverbs_create_qp_resp qr, ud, uc;
	struct ib_uverbs_query_qp_resp q;
	struct ib_uverbs_create_srq_resp r;
	struct ib_uverbs_query_srq_resp sr;
	struct {
		struct ib_uverbs_cmd_hdr hdr;
		struct ib_uverbs_query_srq cmd;
	} qsrq = { .cmd.response = (uintptr_t)&sr };
	uint64_t drv = 0;
	uint32_t h, h2;
	int rv;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rv = raw_create_srq(ufd, pd, bad[i].wr, bad[i].sge,
				    bad[i].limit, &h);
		CHECK(rv == -EINVAL, "CREATE_SRQ %s -> %d (want -EINVAL)",
		      bad[i].what, rv);
	}
	rv = raw_create_srq_drv(ufd, pd, 16384, 8, 16384, NULL, 0, &r);
	CHECK(!rv && r.max_wr == 16384 && r.max_sge == 8,
	      "CREATE_SRQ at the limits (16384 WRs, 8 SGEs, srq_limit = max_wr) rv=%d max_wr=%u max_sge=%u",
	      rv, r.max_wr, r.max_sge);
	if (!rv) {
		rv = raw_destroy_srq(ufd, r.srq_handle);
		CHECK(!rv, "DESTROY_SRQ rv=%d", rv);
	}
	rv = raw_create_srq_drv(ufd, pd, 100, 3, 10, &drv, sizeof(drv), &r);
	CHECK(!rv && r.max_wr == 100 && r.max_sge == 3,
	      "CREATE_SRQ with zero driver data rv=%d max_wr=%u max_sge=%u",
	      rv, r.max_wr, r.max_sge);
	if (!rv)
		raw_destroy_srq(ufd, r.srq_handle);
	drv = 1;
	rv = raw_create_srq_drv(ufd, pd, 100, 3, 10, &drv, sizeof(drv), &r);
	CHECK(rv == -EOPNOTSUPP,
	      "CREATE_SRQ with unknown driver data -> %d (want -EOPNOTSUPP)",
	      rv);

	/* ib_uverbs wants an XRCD for an XRC SRQ: rdma_omx has none. */
	rv = raw_create_xsrq(ufd, IB_UVERBS_SRQT_XRC, pd, cq, 0, 16, &r);
	CHECK(rv == -EINVAL, "CREATE_XSRQ XRC -> %d (want -EINVAL, no XRCD)",
	      rv);
	rv = raw_create_xsrq(ufd, IB_UVERBS_SRQT_TM, pd, cq, 0, 16, &r);
	CHECK(rv == -EOPNOTSUPP,
	      "CREATE_XSRQ tag matching -> %d (want -EOPNOTSUPP)", rv);
	rv = raw_create_xsrq(ufd, IB_UVERBS_SRQT_TM + 1, pd, cq, 0, 16, &r);
	CHECK(rv == -EOPNOTSUPP,
	      "CREATE_XSRQ unknown type -> %d (want -EOPNOTSUPP)", rv);
	rv = raw_create_xsrq(ufd, IB_UVERBS_SRQT_BASIC, pd, cq, 0, 16, &r);
	CHECK(!rv && r.max_wr == 16, "CREATE_XSRQ basic rv=%d max_wr=%u", rv,
	      r.max_wr);
	if (!rv) {
		/* ibv_modify_srq/ibv_query_srq are the provider's. */
		qsrq.cmd.srq_handle = r.srq_handle;
		rv = raw_write(ufd, IB_USER_VERBS_CMD_QUERY_SRQ, &qsrq,
			       sizeof(qsrq), sizeof(sr));
		CHECK(rv == -EOPNOTSUPP,
		      "QUERY_SRQ (no kernel op) -> %d (want -EOPNOTSUPP)", rv);
		raw_destroy_srq(ufd, r.srq_handle);
	}

	/* The same through the SRQ_CREATE ioctl. */
	drv = 0;
	rv = raw_create_srq_ioctl(ufd, IB_UVERBS_SRQT_BASIC, pd, 0, 300, 5, 300,
				  &drv, &h, &r.max_wr, &r.max_sge);
	CHECK(!rv && r.max_wr == 300 && r.max_sge == 5,
	      "SRQ_CREATE ioctl with zero driver input rv=%d max_wr=%u max_sge=%u",
	      rv, r.max_wr, r.max_sge);
	if (!rv) {
		rv = raw_destroy_srq_ioctl(ufd, h);
		CHECK(!rv, "SRQ_DESTROY ioctl rv=%d", rv);
	}
	drv = 1;
	rv = raw_create_srq_ioctl(ufd, IB_UVERBS_SRQT_BASIC, pd, 0, 300, 5, 0,
				  &drv, &h, &r.max_wr, &r.max_sge);
	CHECK(rv == -EOPNOTSUPP,
	      "SRQ_CREATE ioctl with unknown driver input -> %d (want -EOPNOTSUPP)",
	      rv);
	rv = raw_create_srq_ioctl(ufd, IB_UVERBS_SRQT_BASIC, pd, 0, 300, 5, 301,
				  NULL, &h, &r.max_wr, &r.max_sge);
	CHECK(rv == -EINVAL, "SRQ_CREATE ioctl srq_limit > max_wr -> %d (want -EINVAL)",
	      rv);
	rv = raw_create_srq_ioctl(ufd, IB_UVERBS_SRQT_TM, pd, cq, 16, 1, 0,
				  NULL, &h, &r.max_wr, &r.max_sge);
	CHECK(rv == -EOPNOTSUPP,
	      "SRQ_CREATE ioctl tag matching -> %d (want -EOPNOTSUPP)", rv);
	rv = raw_create_srq_ioctl(ufd, IB_UVERBS_SRQT_XRC, pd, cq, 16, 1, 0,
				  NULL, &h, &r.max_wr, &r.max_sge);
	CHECK(rv < 0, "SRQ_CREATE ioctl XRC (no XRCD) -> %d", rv);

	/* A QP on an SRQ keeps it: -EBUSY until the last QP is gone. */
	rv = raw_create_srq(ufd, pd, 64, 2, 8, &h2);
	CHECK(!rv, "CREATE_SRQ #2 rv=%d", rv);
	rv = raw_create_qp_srq(ufd, pd, cq, cq, IB_UVERBS_QPT_UD, h2, 4, &ud);
	CHECK(!rv && !ud.max_recv_wr && !ud.max_recv_sge,
	      "CREATE_QP UD on the SRQ rv=%d max_recv_wr=%u max_recv_sge=%u",
	      rv, ud.max_recv_wr, ud.max_recv_sge);
	rv = raw_create_qp_srq(ufd, pd, cq, cq, IB_UVERBS_QPT_UC, h2, 0, &uc);
	CHECK(!rv && !uc.max_recv_wr, "CREATE_QP UC on the SRQ rv=%d", rv);
	rv = raw_destroy_srq(ufd, h2);
	CHECK(rv == -EBUSY, "DESTROY_SRQ with two QPs on it -> %d (want -EBUSY)",
	      rv);
	rv = raw_destroy_qp(ufd, ud.qp_handle);
	CHECK(!rv, "DESTROY_QP UD rv=%d", rv);
	rv = raw_destroy_srq(ufd, h2);
	CHECK(rv == -EBUSY, "DESTROY_SRQ with one QP on it -> %d (want -EBUSY)",
	      rv);
	rv = raw_destroy_qp(ufd, uc.qp_handle);
	CHECK(!rv, "DESTROY_QP UC rv=%d", rv);
	rv = raw_destroy_srq(ufd, h2);
	CHECK(!rv, "DESTROY_SRQ once no QP uses it rv=%d", rv);
	rv = raw_destroy_srq(ufd, h2);
	CHECK(rv < 0, "DESTROY_SRQ again -> %d", rv);

	/* Kept: an SRQ and an RC QP whose RQ sizes would be refused alone. */
	rv = raw_create_srq(ufd, pd, 64, 2, 8, srq);
	CHECK(!rv, "CREATE_SRQ rv=%d handle=%u", rv, *srq);
	rv = raw_create_qp_srq(ufd, pd, cq, cq, IB_UVERBS_QPT_RC, *srq,
			       1 << 20, &qr);
	CHECK(!rv && !qr.max_recv_wr && !qr.max_recv_sge &&
	      qr.max_send_wr == 16,
	      "CREATE_QP RC on the SRQ, max_recv_wr 2^20 ignored: rv=%d max_recv_wr=%u max_recv_sge=%u max_send_wr=%u",
	      rv, qr.max_recv_wr, qr.max_recv_sge, qr.max_send_wr);
	*qp = qr.qp_handle;
	rv = raw_query_qp(ufd, *qp, &q);
	CHECK(!rv && !q.max_recv_wr && !q.max_recv_sge,
	      "QUERY_QP of the QP on the SRQ rv=%d max_recv_wr=%u max_recv_sge=%u",
	      rv, q.max_recv_wr, q.max_recv_sge);
	rv = raw_modify_qp(ufd, *qp, M_STATE | M_PKEY | M_PORT | M_ACCESS,
			   S_INIT, 0);
	CHECK(!rv, "MODIFY_QP of the QP on the SRQ to INIT rv=%d", rv);
}

static const char *const ev_names[] = {
	"CQ_ERR", "QP_FATAL", "QP_REQ_ERR", "QP_ACCESS_ERR", "COMM_EST",
	"SQ_DRAINED", "PATH_MIG", "PATH_MIG_ERR", "DEVICE_FATAL",
	"PORT_ACTIVE", "PORT_ERR", "LID_CHANGE", "PKEY_CHANGE", "SM_CHANGE",
	"SRQ_ERR", "SRQ_LIMIT_REACHED", "QP_LAST_WQE_REACHED",
	"CLIENT_REREGISTER", "GID_CHANGE", "WQ_FATAL",
};

static int hold(int chan, uint32_t cq, int efd)
{
	struct ib_uverbs_async_event_desc ev;
	int afd = ctx.base.async_fd, n;
	uint32_t pd;
	int rv;

	for (;;) {
		n = read(afd, &ev, sizeof(ev));
		if (n != sizeof(ev)) {
			printf("async read -> %d errno %d\n", n, errno);
			break;
		}
		printf("ASYNC %s element=%llu\n",
		       ev.event_type < 20 ? ev_names[ev.event_type] : "?",
		       (unsigned long long)ev.element);
		fflush(stdout);
		if (ev.event_type == EV_DEVICE_FATAL)
			break;
	}
	CHECK(eventfd_signalled(efd, 5000),
	      "fatal eventfd signalled at disassociation");
	rv = raw_alloc_pd(ufd, &pd);
	CHECK(rv == -EIO, "ALLOC_PD after DEVICE_FATAL -> %d (want -EIO)", rv);
	rv = raw_cq_notify(ufd, cq);
	CHECK(rv < 0, "CQ_NOTIFY after DEVICE_FATAL -> %d", rv);
	rv = raw_ctx_fatal_fd(ufd, efd);
	CHECK(rv < 0, "CTX_FATAL_FD after DEVICE_FATAL -> %d", rv);
	close(chan);
	close(afd);
	close(ufd);
	printf("DONE failures=%d\n", failures);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct ib_uverbs_create_qp_resp qr, qr2, qr3;
	struct ib_uverbs_reg_mr_resp mr, mr2;
	uint32_t pd, cq, cq2, lone, events, srq, srq_qp;
	int chan, rv, n, efd, afd, read1, read2;
	char line[64];
	void *buf;

	if (argc != 3) {
		fprintf(stderr, "usage: %s /dev/infiniband/uverbsN run|hold|port\n",
			argv[0]);
		return 2;
	}
	ufd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (ufd < 0) {
		perror(argv[1]);
		return 1;
	}

	rv = raw_get_context(ufd, &ctx);
	CHECK(!rv, "GET_CONTEXT rv=%d async_fd=%u vectors=%u", rv,
	      ctx.base.async_fd, ctx.base.num_comp_vectors);
	if (rv)
		return 1;
	CHECK(ctx.drv.abi_version == OMX_UVERBS_ABI_VERSION &&
	      ctx.drv.endpoint >= OMX_ENDPOINT_MIN &&
	      ctx.drv.endpoint <= OMX_ENDPOINT_MAX &&
	      ctx.drv.max_qp_per_context == OMX_MAX_QP_PER_CONTEXT,
	      "ucontext resp abi=%u endpoint=%u ifindex=%u flags=0x%x mtu=%u mac=%02x:%02x:%02x:%02x:%02x:%02x",
	      ctx.drv.abi_version, ctx.drv.endpoint, ctx.drv.ifindex,
	      ctx.drv.flags, ctx.drv.netdev_mtu, ctx.drv.mac[0],
	      ctx.drv.mac[1], ctx.drv.mac[2], ctx.drv.mac[3], ctx.drv.mac[4],
	      ctx.drv.mac[5]);

	if (!strcmp(argv[2], "port"))
		return query_port_dev() || failures ? 1 : 0;
	afd = ctx.base.async_fd;

	rv = raw_alloc_pd(ufd, &pd);
	CHECK(!rv, "ALLOC_PD rv=%d handle=%u", rv, pd);
	check_driver_data();
	rv = raw_comp_channel(ufd, &chan);
	CHECK(!rv, "CREATE_COMP_CHANNEL rv=%d fd=%d", rv, chan);
	rv = raw_create_cq(ufd, chan, OMX_MAX_CQE + 1, CQ_UH, &cq);
	CHECK(rv == -EINVAL, "CREATE_CQ cqe too large -> %d (want -EINVAL)", rv);
	rv = raw_create_cq_write(ufd, chan, 256, CQ_UH, &cq);
	CHECK(rv == -EOPNOTSUPP,
	      "CREATE_CQ write command with a channel -> %d (want -EOPNOTSUPP)",
	      rv);
	rv = raw_create_cq_write(ufd, -1, 16, 0, &lone);
	CHECK(!rv, "CREATE_CQ write command without a channel rv=%d", rv);
	rv = raw_cq_notify(ufd, lone);
	CHECK(!rv, "CQ_NOTIFY on a CQ without channel rv=%d", rv);
	rv = raw_create_cq(ufd, chan, 256, CQ_UH, &cq);
	CHECK(!rv, "CREATE_CQ (ioctl, channel) rv=%d handle=%u", rv, cq);
	rv = raw_create_cq(ufd, chan, 16, CQ2_UH, &cq2);
	CHECK(!rv, "CREATE_CQ #2 rv=%d handle=%u", rv, cq2);

	rv = raw_create_qp(ufd, pd, cq, cq, IB_UVERBS_QPT_RC, 128, &qr);
	CHECK(!rv && qr.qpn >> OMX_QPN_SLOT_BITS == ctx.drv.endpoint,
	      "CREATE_QP RC rv=%d qpn=0x%x (endpoint %u slot %u)", rv, qr.qpn,
	      omx_qpn_endpoint(qr.qpn), qr.qpn & OMX_QPN_SLOT_MASK);
	rv = raw_create_qp(ufd, pd, cq, cq, IB_UVERBS_QPT_UD, 128, &qr2);
	CHECK(!rv && qr2.qpn != qr.qpn, "CREATE_QP UD rv=%d qpn=0x%x", rv,
	      qr2.qpn);
	rv = raw_create_qp(ufd, pd, cq, cq, IB_UVERBS_QPT_RC, 1 << 20, &qr3);
	CHECK(rv == -EINVAL, "CREATE_QP max_send_wr too large -> %d (want -EINVAL)",
	      rv);
	rv = raw_create_qp(ufd, pd, cq, cq, IB_UVERBS_QPT_RAW_PACKET, 16, &qr3);
	CHECK(rv == -EOPNOTSUPP, "CREATE_QP RAW_PACKET -> %d (want -EOPNOTSUPP)",
	      rv);

	check_modify(qr.qp_handle, qr2.qp_handle, qr2.qpn);
	buf = aligned_alloc(4096, 1 << 16);
	check_mr(pd, &mr, &mr2, buf);
	check_comp_events(chan, cq, cq2, &read1, &read2);
	check_cq_error(afd, cq);
	check_srq(pd, cq2, &srq, &srq_qp);
	check_mw(argv[1], pd, mr.lkey, mr2.lkey, buf, !strcmp(argv[2], "run"));

	efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	check_fatal_fd(efd);
	CHECK(!eventfd_signalled(efd, 0), "fatal eventfd quiet while open");

	printf("READY endpoint=%u qpn=0x%x lkey=0x%08x\n", ctx.drv.endpoint,
	       qr.qpn, mr.lkey);
	fflush(stdout);

	if (!strcmp(argv[2], "hold"))
		return hold(chan, cq, efd);

	/* Wait for the scenario (rdma resource show, ...). */
	if (!fgets(line, sizeof(line), stdin))
		line[0] = 0;

	/* Last: QP events move the RC QP through several epochs. */
	check_qp_events(afd, qr.qp_handle);
	rv = raw_destroy_qp(ufd, qr.qp_handle);
	CHECK(!rv, "DESTROY_QP RC rv=%d", rv);
	rv = raw_qp_event(ufd, qr2.qp_handle, OMX_QP_EVENT_FATAL, 0);
	CHECK(!rv, "QP_EVENT on the UD QP rv=%d", rv);
	rv = raw_destroy_qp(ufd, qr2.qp_handle);
	CHECK(!rv, "DESTROY_QP UD right after QP_EVENT rv=%d", rv);
	rv = raw_destroy_srq(ufd, srq);
	CHECK(rv == -EBUSY, "DESTROY_SRQ under its QP -> %d (want -EBUSY)", rv);
	rv = raw_destroy_qp(ufd, srq_qp);
	CHECK(!rv, "DESTROY_QP on the SRQ rv=%d", rv);
	rv = raw_destroy_srq(ufd, srq);
	CHECK(!rv, "DESTROY_SRQ rv=%d", rv);
	rv = raw_dereg_mr(ufd, mr.mr_handle);
	CHECK(!rv, "DEREG_MR rv=%d", rv);
	rv = raw_dereg_mr(ufd, mr2.mr_handle);
	CHECK(!rv, "DEREG_MR #2 rv=%d", rv);
	for (int i = 0; i < 100; i++)
		raw_cq_notify(ufd, cq);
	n = raw_read_comp_events(chan, 0, 0, CQ_UH, NULL);
	rv = raw_destroy_cq(ufd, cq, &events);
	CHECK(!rv && events == (uint32_t)(read1 + n),
	      "DESTROY_CQ with requests queued rv=%d comp_events_reported=%u (read %d)",
	      rv, events, read1 + n);
	rv = raw_destroy_cq(ufd, cq2, &events);
	CHECK(!rv && events == (uint32_t)read2,
	      "DESTROY_CQ #2 rv=%d comp_events_reported=%u (read %d)", rv,
	      events, read2);
	rv = raw_destroy_cq(ufd, lone, &events);
	CHECK(!rv && !events, "DESTROY_CQ without channel rv=%d events=%u", rv,
	      events);
	rv = raw_dealloc_pd(ufd, pd);
	CHECK(!rv, "DEALLOC_PD rv=%d", rv);
	close(chan);
	close(ufd);
	CHECK(!eventfd_signalled(efd, 200),
	      "fatal eventfd not signalled by a normal close");
	printf("DONE failures=%d\n", failures);
	return failures ? 1 : 0;
}
