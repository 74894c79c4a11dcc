// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * omx_ulimits: rdma_omx's per-user limits, through raw uverbs.
 *
 *   omx_ulimits /dev/infiniband/uverbsN IBDEV UID_A UID_B UID_C UID_D
 *
 * Run as root, with the module loaded with max_contexts_per_user=3 and
 * max_{pds,cqs,qps,mrs,srqs,mws}_per_user=2 (max_pds_per_user is raised to 3
 * on the way, through sysfs).  Children drop to throwaway uids:
 *  A  opens 3 contexts (a 4th fails with EDQUOT), then in them 2 PDs,
 *     2 CQs, 2 QPs, 2 MRs, 2 SRQs and 2 MWs each (the 3rd of each fails with
 *     EDQUOT, whichever context asks: the limits are per user and device;
 *     a destroyed SRQ gives its charge back);
 *  B  while A holds everything, opens a context and creates one of each:
 *     another user is not affected;
 *  C  opens a context and the same process, now running as D, keeps
 *     using the file: the CQs D creates through it are charged to C and
 *     hit C's limit, D has no record.
 * The parent prints the sysfs omx_users table while A holds its objects
 * and checks it lists no user once everybody has exited.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "omx_raw.h"

static const char *dev;
static char users_path[256];
static int failures;

#define CHECK(cond, ...) do {						\
	bool ok_ = (cond);						\
									\
	printf("%s ", ok_ ? "ok  " : "FAIL");				\
	failures += !ok_;						\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

static void become(uid_t uid)
{
	if (setgroups(0, NULL) || setresgid(uid, uid, uid) ||
	    setresuid(uid, uid, uid)) {
		perror("drop privileges");
		exit(2);
	}
}

static int open_ctx(int *fd)
{
	struct raw_ctx_resp r;
	int rv;

	*fd = open(dev, O_RDWR | O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	rv = raw_get_context(*fd, &r);
	if (rv) {
		close(*fd);
		*fd = -1;
	}
	return rv;
}

/* Create 2 objects of each kind, the third must fail with EDQUOT. */
static void fill_quota(const char *who, int fd, int fd2)
{
	struct ib_uverbs_create_qp_resp qr;
	struct ib_uverbs_reg_mr_resp mr;
	struct ib_uverbs_alloc_mw_resp mw;
	uint32_t pd, pd2, cq, h, srq;
	char *buf = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rv;

	rv = raw_alloc_pd(fd, &pd);
	CHECK(!rv, "%s: PD 1 rv=%d", who, rv);
	rv = raw_alloc_pd(fd2, &pd2);
	CHECK(!rv, "%s: PD 2 (another context) rv=%d", who, rv);
	rv = raw_alloc_pd(fd, &h);
	CHECK(rv == -EDQUOT, "%s: PD 3 -> %d (want -EDQUOT)", who, rv);
	rv = raw_alloc_pd(fd2, &h);
	CHECK(rv == -EDQUOT, "%s: PD 3 in the other context -> %d", who, rv);

	rv = raw_create_cq_write(fd, -1, 16, 1, &cq);
	CHECK(!rv, "%s: CQ 1 rv=%d", who, rv);
	rv = raw_create_cq(fd, -1, 16, 2, &h);
	CHECK(!rv, "%s: CQ 2 rv=%d", who, rv);
	rv = raw_create_cq(fd, -1, 16, 3, &h);
	CHECK(rv == -EDQUOT, "%s: CQ 3 -> %d (want -EDQUOT)", who, rv);

	for (int i = 1; i <= 3; i++) {
		rv = raw_create_qp(fd, pd, cq, cq, IB_UVERBS_QPT_RC, 16, &qr);
		CHECK(i < 3 ? !rv : rv == -EDQUOT, "%s: QP %d -> %d", who, i,
		      rv);
		rv = raw_reg_mr(fd, pd, (uintptr_t)buf, 4096,
				IB_UVERBS_ACCESS_LOCAL_WRITE, &mr);
		CHECK(i < 3 ? !rv : rv == -EDQUOT, "%s: MR %d -> %d", who, i,
		      rv);
	}

	rv = raw_create_srq(fd, pd, 16, 1, 0, &srq);
	CHECK(!rv, "%s: SRQ 1 rv=%d", who, rv);
	rv = raw_create_srq(fd2, pd2, 16, 1, 0, &h);
	CHECK(!rv, "%s: SRQ 2 (another context) rv=%d", who, rv);
	rv = raw_create_srq(fd, pd, 16, 1, 0, &h);
	CHECK(rv == -EDQUOT, "%s: SRQ 3 -> %d (want -EDQUOT)", who, rv);
	rv = raw_create_srq(fd2, pd2, 16, 1, 0, &h);
	CHECK(rv == -EDQUOT, "%s: SRQ 3 in the other context -> %d", who, rv);
	rv = raw_destroy_srq(fd, srq);
	CHECK(!rv, "%s: SRQ 1 destroyed rv=%d", who, rv);
	rv = raw_create_srq(fd, pd, 16, 1, 0, &srq);
	CHECK(!rv, "%s: SRQ 3 after a destroy rv=%d", who, rv);
	rv = raw_create_srq(fd, pd, 16, 1, 0, &h);
	CHECK(rv == -EDQUOT, "%s: SRQ 4 -> %d (want -EDQUOT)", who, rv);

	rv = raw_alloc_mw(fd, pd, 1, &mw);
	CHECK(!rv, "%s: MW 1 rv=%d", who, rv);
	rv = raw_alloc_mw(fd2, pd2, 2, &mw);
	CHECK(!rv, "%s: MW 2 (another context) rv=%d", who, rv);
	rv = raw_alloc_mw(fd, pd, 2, &mw);
	CHECK(rv == -EDQUOT, "%s: MW 3 -> %d (want -EDQUOT)", who, rv);
}

/* User A: everything up to its limits, then hold until told. */
static void user_a(uid_t uid, int ready_fd, int go_fd)
{
	int fd[4], rv;
	char c;

	become(uid);
	for (int i = 0; i < 3; i++) {
		rv = open_ctx(&fd[i]);
		CHECK(!rv, "A: context %d rv=%d", i + 1, rv);
	}
	rv = open_ctx(&fd[3]);
	CHECK(rv == -EDQUOT, "A: context 4 -> %d (want -EDQUOT)", rv);
	fill_quota("A", fd[0], fd[1]);
	CHECK(write(ready_fd, "r", 1) == 1 && read(go_fd, &c, 1) == 1,
	      "A: told to go");
	exit(failures ? 1 : 0);
}

/* User B: not affected by A. */
static void user_b(uid_t uid)
{
	struct ib_uverbs_create_qp_resp qr;
	struct ib_uverbs_alloc_mw_resp mw;
	uint32_t pd, cq, srq;
	int fd, rv;

	become(uid);
	rv = open_ctx(&fd);
	CHECK(!rv, "B: context rv=%d while A is at its limits", rv);
	rv = raw_alloc_pd(fd, &pd);
	CHECK(!rv, "B: PD rv=%d", rv);
	rv = raw_create_cq(fd, -1, 16, 1, &cq);
	CHECK(!rv, "B: CQ rv=%d", rv);
	rv = raw_create_qp(fd, pd, cq, cq, IB_UVERBS_QPT_RC, 16, &qr);
	CHECK(!rv, "B: QP rv=%d", rv);
	rv = raw_create_srq(fd, pd, 16, 1, 0, &srq);
	CHECK(!rv, "B: SRQ rv=%d", rv);
	rv = raw_alloc_mw(fd, pd, 1, &mw);
	CHECK(!rv, "B: MW rv=%d", rv);
	exit(failures ? 1 : 0);
}

static int wait_child(const char *who, pid_t pid)
{
	int status;
	bool ok = waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  !WEXITSTATUS(status);

	CHECK(ok, "%s exited with status 0x%x", who, status);
	return 0;
}

static void show_users(const char *when, char *out, size_t len)
{
	FILE *f = fopen(users_path, "r");
	size_t n = 0;

	out[0] = 0;
	if (f) {
		n = fread(out, 1, len - 1, f);
		fclose(f);
	}
	out[n] = 0;
	printf("omx_users %s:\n%s", when, out);
}

int main(int argc, char **argv)
{
	int ready[2], go[2], rv, fd;
	uid_t a, b, c, d;
	char buf[4096], want[64];
	pid_t pa, pb, pd_;
	uint32_t h;

	if (argc != 7) {
		fprintf(stderr, "usage: %s /dev/infiniband/uverbsN IBDEV UID_A UID_B UID_C UID_D\n",
			argv[0]);
		return 2;
	}
	dev = argv[1];
	snprintf(users_path, sizeof(users_path),
		 "/sys/class/infiniband/%s/omx_users", argv[2]);
	a = atoi(argv[3]);
	b = atoi(argv[4]);
	c = atoi(argv[5]);
	d = atoi(argv[6]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (pipe(ready) || pipe(go))
		return 2;
	pa = fork();
	if (!pa) {
		failures = 0;
		user_a(a, ready[1], go[0]);
	}
	CHECK(read(ready[0], buf, 1) == 1, "A is ready");
	show_users("while A holds its objects", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%u 3 2 2 2 2 2 2\n", a);
	CHECK(strstr(buf, want), "omx_users lists A with 3 2 2 2 2 2 2");

	pb = fork();
	if (!pb) {
		failures = 0;
		user_b(b);
	}
	wait_child("B", pb);

	/* Raise A's PD limit at run time: a third PD is accepted. */
	{
		FILE *f = fopen("/sys/module/rdma_omx/parameters/max_pds_per_user",
				"w");

		CHECK(f && fprintf(f, "3\n") > 0 && !fclose(f),
		      "max_pds_per_user set to 3");
	}
	CHECK(write(go[1], "g", 1) == 1, "A may go");
	wait_child("A", pa);

	/*
	 * C opens a context; the file passes (fork) to a process running as
	 * D, whose PDs are charged to C: C's limit is now 3 and C holds one.
	 */
	pd_ = fork();
	if (!pd_) {
		failures = 0;
		if (setresgid(c, c, c) || setresuid(c, c, 0)) {
			perror("become C");
			exit(2);
		}
		rv = open_ctx(&fd);
		CHECK(!rv, "C: context rv=%d", rv);
		rv = raw_create_cq_write(fd, -1, 16, 1, &h);
		CHECK(!rv, "C: CQ 1 rv=%d", rv);
		/*
		 * Same file, now used by D.  uverbs refuses write() commands
		 * from other credentials (-EACCES), the ioctl path it does
		 * not: that is how a passed file is used.
		 */
		if (setresuid(0, 0, 0) || setresgid(d, d, d) ||
		    setresuid(d, d, d)) {
			perror("become D");
			exit(2);
		}
		rv = raw_alloc_pd(fd, &h);
		CHECK(rv == -EACCES, "D: write() command on C's file -> %d",
		      rv);
		rv = raw_create_cq(fd, -1, 16, 2, &h);
		CHECK(!rv, "D through C's context: CQ 2 rv=%d", rv);
		rv = raw_create_cq(fd, -1, 16, 3, &h);
		CHECK(rv == -EDQUOT,
		      "D through C's context: CQ 3 -> %d (C's quota)", rv);
		{
			FILE *f = fopen(users_path, "r");

			/* D cannot read it (0400); the parent checks. */
			CHECK(!f, "omx_users is root only");
			if (f)
				fclose(f);
		}
		CHECK(write(ready[1], "r", 1) == 1 && read(go[0], buf, 1) == 1,
		      "C/D: told to go");
		exit(failures ? 1 : 0);
	}
	CHECK(read(ready[0], buf, 1) == 1, "C/D is ready");
	show_users("while C's context is used by D", buf, sizeof(buf));
	snprintf(want, sizeof(want), "%u 1 0 2 0 0 0 0\n", c);
	CHECK(strstr(buf, want), "omx_users charges D's CQ to C");
	snprintf(want, sizeof(want), "%u ", d);
	CHECK(!strstr(buf, want), "omx_users has no record for D");
	CHECK(write(go[1], "g", 1) == 1, "C/D may go");
	wait_child("C/D", pd_);

	/* Records are freed with their user's last context. */
	usleep(200 * 1000);
	show_users("after everyone exited", buf, sizeof(buf));
	CHECK(!buf[0], "no user record left");
	printf("DONE failures=%d\n", failures);
	return failures ? 1 : 0;
}
