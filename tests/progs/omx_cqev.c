// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_cqev: the kernel completion-event path of rdma_omx.
 *
 *   omx_cqev -d DEV [-c NCQ] [-T THREADS] [-n REQS_PER_THREAD] [-t SECONDS]
 *
 * THREADS threads ask the kernel (driver method OMX_METHOD_CQ_NOTIFY) to
 * raise completion events on NCQ CQs that share one completion channel,
 * while the main thread reads the channel.  Checks:
 *  - every request yields exactly one event on the right CQ, no more
 *    (after the last expected event, the channel stays quiet);
 *  - destroying a CQ with requests still queued returns promptly;
 *  - a request on a CQ without a channel is accepted and raises nothing.
 * That the kernel never runs two event handlers at once for one CQ is
 * asserted inside the module (a violation is a WARN, which fails the
 * scenario through the dmesg check).
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>
#include "common.h"
#include "omx_ioctl.h"

#define MAX_CQ 64

static struct ibv_cq *cqs[MAX_CQ];
static atomic_long requested[MAX_CQ];
static long received[MAX_CQ];
static int ncq = 4, per_thread = 2000;

static void *requester(void *arg)
{
	long id = (long)arg;
	int i, ret;

	for (i = 0; i < per_thread; i++) {
		int c = (int)((id * 7 + i) % ncq);

		ret = omx_cq_notify(cqs[c]);
		if (ret)
			die("notify cq %d: %s", c, strerror(-ret));
		atomic_fetch_add(&requested[c], 1);
	}
	return NULL;
}

/* Reads one event, waiting at most ms; returns its CQ index or -1. */
static int read_event(struct ibv_comp_channel *ch, int ms)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *cq_ctx;
	int r = poll(&pfd, 1, ms);

	if (r < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (r <= 0)
		return -1;
	if (ibv_get_cq_event(ch, &cq, &cq_ctx)) {
		if (errno == EAGAIN)
			return -1;
		die("ibv_get_cq_event: %s", strerror(errno));
	}
	return (int)(long)cq_ctx;
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	int nthreads = 4, opt, i, flags;
	double timeout = 120, deadline;
	long total = 0, got = 0;
	struct ibv_comp_channel *ch;
	struct ibv_context *ctx;
	pthread_t th[64];

	while ((opt = getopt(argc, argv, "d:c:T:n:t:")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'c': ncq = atoi(optarg); break;
		case 'T': nthreads = atoi(optarg); break;
		case 'n': per_thread = atoi(optarg); break;
		case 't': timeout = atof(optarg); break;
		default:
			fprintf(stderr, "usage: %s -d DEV [-c NCQ] [-T N] [-n N] [-t S]\n",
				argv[0]);
			return 2;
		}
	}
	if (!dev || ncq < 1 || ncq > MAX_CQ || nthreads < 1 || nthreads > 64) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	ctx = open_by_name(dev);
	ch = ibv_create_comp_channel(ctx);
	if (!ch)
		die("ibv_create_comp_channel: %s", strerror(errno));
	flags = fcntl(ch->fd, F_GETFL);
	if (fcntl(ch->fd, F_SETFL, flags | O_NONBLOCK))
		die("fcntl: %s", strerror(errno));
	for (i = 0; i < ncq; i++) {
		cqs[i] = ibv_create_cq(ctx, 16, (void *)(long)i, ch, 0);
		if (!cqs[i])
			die("ibv_create_cq: %s", strerror(errno));
	}

	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, requester, (void *)(long)i);
	total = (long)nthreads * per_thread;
	deadline = now_s() + timeout;
	while (got < total) {
		int c = read_event(ch, 100);

		if (now_s() > deadline)
			die("timeout: %ld of %ld events", got, total);
		if (c < 0)
			continue;
		if (c >= ncq)
			die("event for unknown cq context %d", c);
		received[c]++;
		got++;
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	/* Exactly one per request: nothing more may arrive. */
	if (read_event(ch, 500) >= 0)
		die("extra completion event after %ld expected ones", total);
	for (i = 0; i < ncq; i++) {
		if (received[i] != atomic_load(&requested[i]))
			die("cq %d: %ld requests but %ld events", i,
			    atomic_load(&requested[i]), received[i]);
		ibv_ack_cq_events(cqs[i], (unsigned int)received[i]);
	}
	printf("events: %ld requests, %ld events over %d CQs, %d threads\n",
	       total, got, ncq, nthreads);

	/* Destroy with requests still queued: must neither hang nor warn. */
	for (i = 0; i < 500; i++)
		if (omx_cq_notify(cqs[0]))
			die("notify before destroy failed");
	if (ibv_destroy_cq(cqs[0]))
		die("ibv_destroy_cq with queued events: %s", strerror(errno));
	while (read_event(ch, 200) >= 0)
		; /* events that landed before the destroy; already counted */
	printf("destroy with queued requests: ok\n");

	/* A CQ without a channel: accepted, no event anywhere. */
	{
		struct ibv_cq *lone = ibv_create_cq(ctx, 16, NULL, NULL, 0);

		if (!lone)
			die("ibv_create_cq without channel: %s", strerror(errno));
		if (omx_cq_notify(lone))
			die("notify on a CQ without channel failed");
		if (read_event(ch, 300) >= 0)
			die("event on the channel from a CQ not bound to it");
		if (ibv_destroy_cq(lone))
			die("ibv_destroy_cq: %s", strerror(errno));
	}
	for (i = 1; i < ncq; i++)
		if (ibv_destroy_cq(cqs[i]))
			die("ibv_destroy_cq: %s", strerror(errno));
	if (ibv_destroy_comp_channel(ch))
		die("ibv_destroy_comp_channel: %s", strerror(errno));
	if (ibv_close_device(ctx))
		die("ibv_close_device: %s", strerror(errno));
	printf("PASS\n");
	return 0;
}
