// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_async: open an RDMA device, optionally create objects on it, then
 * wait for an expected sequence of asynchronous events.
 *
 *   omx_async -d DEV -e EVENT[,EVENT...] [-t SECONDS] [-r READY_FILE] [-o]
 *
 * EVENT is one of PORT_ACTIVE, PORT_ERR, DEVICE_FATAL, LID_CHANGE,
 * GID_CHANGE.  Events must arrive in the given order; others are printed
 * and ignored.  -o creates a PD, a comp channel, a CQ, an MR and an RC QP
 * first and destroys them at the end, which after DEVICE_FATAL checks that
 * a disassociated context still closes cleanly.  READY_FILE is created once
 * the device is open and the objects exist.
 */
#include <poll.h>
#include <unistd.h>
#include "common.h"

static const struct {
	const char *name;
	enum ibv_event_type type;
} names[] = {
	{ "PORT_ACTIVE", IBV_EVENT_PORT_ACTIVE },
	{ "PORT_ERR", IBV_EVENT_PORT_ERR },
	{ "DEVICE_FATAL", IBV_EVENT_DEVICE_FATAL },
	{ "LID_CHANGE", IBV_EVENT_LID_CHANGE },
	{ "GID_CHANGE", IBV_EVENT_GID_CHANGE },
	{ "PKEY_CHANGE", IBV_EVENT_PKEY_CHANGE },
	{ "CLIENT_REREGISTER", IBV_EVENT_CLIENT_REREGISTER },
};

static const char *event_name(enum ibv_event_type t)
{
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == t)
			return names[i].name;
	return ibv_event_type_str(t);
}

static int parse_events(char *list, enum ibv_event_type *out, int max)
{
	char *tok, *save = NULL;
	int n = 0;
	size_t i;

	for (tok = strtok_r(list, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (!strcmp(tok, names[i].name))
				break;
		if (i == sizeof(names) / sizeof(names[0]) || n == max) {
			fprintf(stderr, "unknown or too many events: %s\n", tok);
			exit(2);
		}
		out[n++] = names[i].type;
	}
	return n;
}

struct objs {
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	struct ibv_qp *qp;
	void *buf;
};

static void create_objects(struct ibv_context *ctx, struct objs *o)
{
	struct ibv_qp_init_attr qia = {
		.qp_type = IBV_QPT_RC,
		.cap = { .max_send_wr = 16, .max_recv_wr = 16,
			 .max_send_sge = 1, .max_recv_sge = 1 },
	};

	o->pd = ibv_alloc_pd(ctx);
	if (!o->pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	o->ch = ibv_create_comp_channel(ctx);
	if (!o->ch)
		die("ibv_create_comp_channel: %s", strerror(errno));
	o->cq = ibv_create_cq(ctx, 64, NULL, o->ch, 0);
	if (!o->cq)
		die("ibv_create_cq: %s", strerror(errno));
	o->buf = calloc(1, 65536);
	o->mr = ibv_reg_mr(o->pd, o->buf, 65536, IBV_ACCESS_LOCAL_WRITE);
	if (!o->mr)
		die("ibv_reg_mr: %s", strerror(errno));
	qia.send_cq = o->cq;
	qia.recv_cq = o->cq;
	o->qp = ibv_create_qp(o->pd, &qia);
	if (!o->qp)
		die("ibv_create_qp: %s", strerror(errno));
	printf("objects: qpn=0x%x lkey=0x%x\n", o->qp->qp_num, o->mr->lkey);
}

static void destroy_objects(struct objs *o)
{
	int ret;

	if ((ret = ibv_destroy_qp(o->qp)))
		die("ibv_destroy_qp: %s", strerror(ret));
	if ((ret = ibv_dereg_mr(o->mr)))
		die("ibv_dereg_mr: %s", strerror(ret));
	if ((ret = ibv_destroy_cq(o->cq)))
		die("ibv_destroy_cq: %s", strerror(ret));
	if ((ret = ibv_destroy_comp_channel(o->ch)))
		die("ibv_destroy_comp_channel: %s", strerror(ret));
	if ((ret = ibv_dealloc_pd(o->pd)))
		die("ibv_dealloc_pd: %s", strerror(ret));
	free(o->buf);
}

int main(int argc, char **argv)
{
	enum ibv_event_type want[16];
	const char *dev = NULL, *ready = NULL;
	int nwant = 0, got = 0, with_objs = 0, opt, fatal = 0;
	double timeout = 60, deadline;
	struct ibv_context *ctx;
	struct objs o = { 0 };

	while ((opt = getopt(argc, argv, "d:e:t:r:o")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'e': nwant = parse_events(optarg, want, 16); break;
		case 't': timeout = atof(optarg); break;
		case 'r': ready = optarg; break;
		case 'o': with_objs = 1; break;
		default:
			fprintf(stderr, "usage: %s -d DEV -e EV[,EV] [-t S] [-r FILE] [-o]\n",
				argv[0]);
			return 2;
		}
	}
	if (!dev || !nwant) {
		fprintf(stderr, "need -d and -e\n");
		return 2;
	}
	/* Destroying objects of a disassociated device is allowed only so. */
	setenv("RDMAV_ALLOW_DISASSOC_DESTROY", "1", 1);
	ctx = open_by_name(dev);
	if (with_objs)
		create_objects(ctx, &o);
	touch(ready);
	printf("waiting for %d event(s) on %s\n", nwant, dev);
	fflush(stdout);

	deadline = now_s() + timeout;
	while (got < nwant) {
		struct pollfd pfd = { .fd = ctx->async_fd, .events = POLLIN };
		struct ibv_async_event ev;
		double left = deadline - now_s();
		int r;

		if (left <= 0)
			die("timeout: got %d of %d expected events (next %s)",
			    got, nwant, event_name(want[got]));
		r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("poll: %s", strerror(errno));
		if (r == 0)
			continue;
		if (ibv_get_async_event(ctx, &ev))
			die("ibv_get_async_event: %s", strerror(errno));
		printf("event: %s port %d\n", event_name(ev.event_type),
		       ev.element.port_num);
		fflush(stdout);
		if (ev.event_type == want[got])
			got++;
		if (ev.event_type == IBV_EVENT_DEVICE_FATAL)
			fatal = 1;
		ibv_ack_async_event(&ev);
		if (fatal && got < nwant)
			die("device fatal before the expected events");
	}
	if (fatal) {
		/* Every later command must fail, with EIO, and never hang. */
		struct ibv_pd *pd = ibv_alloc_pd(ctx);

		if (pd)
			die("ibv_alloc_pd succeeded on a removed device");
		printf("after fatal: alloc_pd fails with %s\n", strerror(errno));
	}
	if (with_objs)
		destroy_objects(&o);
	if (ibv_close_device(ctx))
		die("ibv_close_device: %s", strerror(errno));
	printf("PASS: all %d events received, device closed\n", nwant);
	return 0;
}
