// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_cqev: the kernel completion-event path of rdma_omx.
 *
 *   omx_cqev -d DEV [-c NCQ] [-T THREADS] [-n REQS_PER_THREAD] [-t SECONDS]
 *
 * THREADS threads ask the kernel (driver method OMX_METHOD_CQ_NOTIFY) to
 * raise completion events on NCQ CQs while the main thread reads them.
 *
 * 1. Exactly once.  Every CQ has its own channel; the threads issue their
 *    requests in rounds of 16 per CQ (the kernel's bound of unread events
 *    per CQ), and the main thread reads every event of a round before the
 *    next starts.  Every request must yield exactly one event on the
 *    right CQ, no more (after the last expected event the channels stay
 *    quiet).
 * 2. Bounded, never lost.  The NCQ CQs share one channel and the threads
 *    issue their requests as fast as they can while the main thread reads:
 *    when the reader falls behind, the kernel folds requests (at most 16
 *    unread events per CQ).  Each CQ must see at least one and at most as
 *    many events as requests, and once the channel is quiet, one more
 *    request per CQ yields exactly one event each.
 * 3. Destroying a CQ with requests still queued returns promptly; a
 *    request on a CQ without a channel is accepted and raises nothing.
 *
 * That the kernel never runs two event handlers at once for one CQ is
 * asserted inside the module (a violation is a WARN, which fails the
 * scenario through the dmesg check).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>
#include "common.h"
#include "omx_ioctl.h"

#define MAX_CQ 64
#define MAX_THREADS 16
#define BOUND 16	/* OMX_CQ_MAX_UNREAD in kmod-shim/rdma_omx.h */

static struct ibv_cq *cqs[MAX_CQ];
static struct ibv_comp_channel *chans[MAX_CQ];
static atomic_long requested[MAX_CQ];
static long received[MAX_CQ];
static int ncq = 4, nthreads = 4, per_thread = 2000, rounds;
static pthread_barrier_t round_start, round_done;
static double deadline;

static void make_nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (fcntl(fd, F_SETFL, flags | O_NONBLOCK))
		die("fcntl: %s", strerror(errno));
}

static void notify(int c)
{
	int ret = omx_cq_notify(cqs[c]);

	if (ret)
		die("notify cq %d: %s", c, strerror(-ret));
	atomic_fetch_add(&requested[c], 1);
}

/* Part 1: in each round, this thread's share of 16 requests per CQ. */
static void *round_requester(void *arg)
{
	long id = (long)arg;
	int r, c, i, share;

	share = BOUND / nthreads + (id < BOUND % nthreads);
	for (r = 0; r < rounds; r++) {
		pthread_barrier_wait(&round_start);
		for (i = 0; i < share; i++)
			for (c = 0; c < ncq; c++)
				notify((int)((c + id + i) % ncq));
		pthread_barrier_wait(&round_done);
	}
	return NULL;
}

/* Part 2: requests as fast as possible, spread over the CQs. */
static void *free_requester(void *arg)
{
	long id = (long)arg;
	int i;

	for (i = 0; i < per_thread; i++)
		notify((int)((id * 7 + i) % ncq));
	return NULL;
}

/* Reads one event from @ch, waiting at most ms; returns its CQ or -1. */
static int read_event(struct ibv_comp_channel *ch, int ms)
{
	struct pollfd pfd = { .fd = ch->fd, .events = POLLIN };
	struct ibv_cq *cq;
	void *cq_ctx;
	int r = poll(&pfd, 1, ms);
	long c;

	if (r < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (r <= 0)
		return -1;
	if (ibv_get_cq_event(ch, &cq, &cq_ctx)) {
		if (errno == EAGAIN)
			return -1;
		die("ibv_get_cq_event: %s", strerror(errno));
	}
	c = (long)cq_ctx;
	if (c < 0 || c >= ncq || cq != cqs[c])
		die("event for unknown cq context %ld", c);
	ibv_ack_cq_events(cq, 1);
	return (int)c;
}

static void create_cqs(struct ibv_context *ctx, bool shared)
{
	int i;

	for (i = 0; i < ncq; i++) {
		if (i == 0 || !shared) {
			chans[i] = ibv_create_comp_channel(ctx);
			if (!chans[i])
				die("ibv_create_comp_channel: %s",
				    strerror(errno));
			make_nonblocking(chans[i]->fd);
		} else {
			chans[i] = chans[0];
		}
		cqs[i] = ibv_create_cq(ctx, 16, (void *)(long)i, chans[i], 0);
		if (!cqs[i])
			die("ibv_create_cq: %s", strerror(errno));
		atomic_store(&requested[i], 0);
		received[i] = 0;
	}
}

static void destroy_cqs(bool shared)
{
	int i;

	for (i = 0; i < ncq; i++)
		if (cqs[i] && ibv_destroy_cq(cqs[i]))
			die("ibv_destroy_cq: %s", strerror(errno));
	for (i = 0; i < ncq; i++) {
		if (i > 0 && shared)
			break;
		if (ibv_destroy_comp_channel(chans[i]))
			die("ibv_destroy_comp_channel: %s", strerror(errno));
	}
}

static void check_deadline(const char *what, long got, long want)
{
	if (now_s() > deadline)
		die("timeout in %s: %ld of %ld events", what, got, want);
}

/* Part 1: exactly one event per request, each CQ on its own channel. */
static void exactly_once(struct ibv_context *ctx)
{
	pthread_t th[MAX_THREADS];
	long i, r, c, got, total = 0;

	create_cqs(ctx, false);
	rounds = per_thread * nthreads / (BOUND * ncq);
	if (rounds < 1)
		rounds = 1;
	pthread_barrier_init(&round_start, NULL, nthreads + 1);
	pthread_barrier_init(&round_done, NULL, nthreads + 1);
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, round_requester, (void *)i);
	for (r = 0; r < rounds; r++) {
		pthread_barrier_wait(&round_start);
		pthread_barrier_wait(&round_done);
		for (c = 0; c < ncq; c++) {
			for (got = 0; got < BOUND; got++) {
				while (read_event(chans[c], 100) != c)
					check_deadline("exactly-once", got,
						       BOUND);
				received[c]++;
			}
		}
	}
	for (i = 0; i < nthreads; i++)
		pthread_join(th[i], NULL);
	for (c = 0; c < ncq; c++) {
		if (read_event(chans[c], c ? 50 : 500) >= 0)
			die("cq %ld: an event more than requested", c);
		if (received[c] != atomic_load(&requested[c]))
			die("cq %ld: %ld requests but %ld events", c,
			    atomic_load(&requested[c]), received[c]);
		total += received[c];
	}
	pthread_barrier_destroy(&round_start);
	pthread_barrier_destroy(&round_done);
	destroy_cqs(false);
	printf("exactly once: %ld requests, %ld events over %d CQs, %d threads, %d rounds\n",
	       total, total, ncq, nthreads, rounds);
}

/* Part 2: unthrottled requests on one shared channel. */
static void bounded(struct ibv_context *ctx)
{
	pthread_t th[MAX_THREADS];
	long i, total = 0, got = 0, c;
	int e;

	create_cqs(ctx, true);
	for (i = 0; i < nthreads; i++)
		pthread_create(&th[i], NULL, free_requester, (void *)i);
	for (i = 0; i < nthreads; i++) {
		void *ret;

		while (pthread_tryjoin_np(th[i], &ret)) {
			e = read_event(chans[0], 10);
			if (e >= 0) {
				received[e]++;
				got++;
			}
			check_deadline("bounded", got, 0);
		}
	}
	/* Owed events come once the channel was read: backoff <= 128 ms. */
	while ((e = read_event(chans[0], 600)) >= 0) {
		received[e]++;
		got++;
	}
	for (c = 0; c < ncq; c++) {
		long req = atomic_load(&requested[c]);

		if (received[c] < 1 || received[c] > req)
			die("cq %ld: %ld requests, %ld events", c, req,
			    received[c]);
		total += req;
	}
	printf("bounded: %ld requests, %ld events over %d CQs on one channel\n",
	       total, got, ncq);
	/* The channel is empty now: one request, one event, per CQ. */
	for (c = 0; c < ncq; c++) {
		received[c] = 0;
		notify((int)c);
	}
	for (got = 0; got < ncq;) {
		e = read_event(chans[0], 100);
		if (e >= 0) {
			received[e]++;
			got++;
		}
		check_deadline("after drain", got, ncq);
	}
	if (read_event(chans[0], 500) >= 0)
		die("an event more than requested after the drain");
	for (c = 0; c < ncq; c++)
		if (received[c] != 1)
			die("cq %ld: %ld events for one request", c,
			    received[c]);

	/* Destroy with requests still queued: must neither hang nor warn. */
	for (i = 0; i < 500; i++)
		if (omx_cq_notify(cqs[0]))
			die("notify before destroy failed");
	if (ibv_destroy_cq(cqs[0]))
		die("ibv_destroy_cq with queued events: %s", strerror(errno));
	cqs[0] = NULL;
	while (read_event(chans[0], 200) >= 0)
		; /* events that landed before the destroy */
	printf("destroy with queued requests: ok\n");

	/* A CQ without a channel: accepted, no event anywhere. */
	{
		struct ibv_cq *lone = ibv_create_cq(ctx, 16, NULL, NULL, 0);

		if (!lone)
			die("ibv_create_cq without channel: %s", strerror(errno));
		if (omx_cq_notify(lone))
			die("notify on a CQ without channel failed");
		if (read_event(chans[0], 300) >= 0)
			die("event on the channel from a CQ not bound to it");
		if (ibv_destroy_cq(lone))
			die("ibv_destroy_cq: %s", strerror(errno));
	}
	destroy_cqs(true);
}

int main(int argc, char **argv)
{
	const char *dev = NULL;
	double timeout = 120;
	struct ibv_context *ctx;
	int opt;

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
	if (!dev || ncq < 1 || ncq > MAX_CQ || nthreads < 1 ||
	    nthreads > MAX_THREADS || per_thread < 1) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	ctx = open_by_name(dev);
	deadline = now_s() + timeout;
	exactly_once(ctx);
	bounded(ctx);
	if (ibv_close_device(ctx))
		die("ibv_close_device: %s", strerror(errno));
	printf("PASS\n");
	return 0;
}
