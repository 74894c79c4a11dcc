// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_objects: create verbs objects on an omx device so the kernel's shadow
 * objects can be inspected (`rdma resource show`) and process cleanup can
 * be checked.
 *
 *   omx_objects -d DEV [-q NQP] [-r READY_FILE] [-w]
 *
 * Creates a PD, a CQ, a 1 MiB MR and NQP QPs (cycling RC, UC, UD), moves
 * the first QP to INIT, prints "qpn 0x..." per QP and the MR keys, checks
 * that query_qp agrees, and creates READY_FILE.  With -w it then sleeps
 * until killed (for kill -9 cleanup tests); without, it destroys
 * everything and exits 0.
 */
#include <unistd.h>
#include "common.h"

int main(int argc, char **argv)
{
	static const enum ibv_qp_type types[] = {
		IBV_QPT_RC, IBV_QPT_UC, IBV_QPT_UD
	};
	const char *dev = NULL, *ready = NULL;
	int nqp = 3, wait_forever = 0, opt, i, ret;
	struct ibv_qp_attr attr, qattr;
	struct ibv_qp_init_attr iattr;
	struct ibv_context *ctx;
	struct ibv_qp **qps;
	struct ibv_pd *pd;
	struct ibv_cq *cq;
	struct ibv_mr *mr;
	void *buf;

	while ((opt = getopt(argc, argv, "d:q:r:w")) != -1) {
		switch (opt) {
		case 'd': dev = optarg; break;
		case 'q': nqp = atoi(optarg); break;
		case 'r': ready = optarg; break;
		case 'w': wait_forever = 1; break;
		default:
			fprintf(stderr, "usage: %s -d DEV [-q N] [-r FILE] [-w]\n",
				argv[0]);
			return 2;
		}
	}
	if (!dev || nqp < 1) {
		fprintf(stderr, "need -d and -q >= 1\n");
		return 2;
	}
	ctx = open_by_name(dev);
	pd = ibv_alloc_pd(ctx);
	if (!pd)
		die("ibv_alloc_pd: %s", strerror(errno));
	cq = ibv_create_cq(ctx, 256, NULL, NULL, 0);
	if (!cq)
		die("ibv_create_cq: %s", strerror(errno));
	buf = calloc(1, 1 << 20);
	mr = ibv_reg_mr(pd, buf, 1 << 20, IBV_ACCESS_LOCAL_WRITE |
			IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ);
	if (!mr)
		die("ibv_reg_mr: %s", strerror(errno));
	printf("mr lkey 0x%x rkey 0x%x\n", mr->lkey, mr->rkey);

	qps = calloc(nqp, sizeof(*qps));
	for (i = 0; i < nqp; i++) {
		struct ibv_qp_init_attr qia = {
			.send_cq = cq, .recv_cq = cq,
			.qp_type = types[i % 3],
			.cap = { .max_send_wr = 64, .max_recv_wr = 64,
				 .max_send_sge = 1, .max_recv_sge = 1 },
		};

		qps[i] = ibv_create_qp(pd, &qia);
		if (!qps[i])
			die("ibv_create_qp #%d: %s", i, strerror(errno));
		printf("qpn 0x%06x\n", qps[i]->qp_num);
	}

	memset(&attr, 0, sizeof(attr));
	attr.qp_state = IBV_QPS_INIT;
	attr.pkey_index = 0;
	attr.port_num = 1;
	attr.qp_access_flags = IBV_ACCESS_REMOTE_WRITE;
	ret = ibv_modify_qp(qps[0], &attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX |
			    IBV_QP_PORT | IBV_QP_ACCESS_FLAGS);
	if (ret)
		die("ibv_modify_qp(INIT): %s", strerror(ret));
	ret = ibv_query_qp(qps[0], &qattr, IBV_QP_STATE, &iattr);
	if (ret)
		die("ibv_query_qp: %s", strerror(ret));
	if (qattr.qp_state != IBV_QPS_INIT)
		die("query_qp says state %d, expected INIT", qattr.qp_state);
	fflush(stdout);
	touch(ready);
	if (wait_forever)
		for (;;)
			pause();

	for (i = 0; i < nqp; i++)
		if ((ret = ibv_destroy_qp(qps[i])))
			die("ibv_destroy_qp: %s", strerror(ret));
	if ((ret = ibv_dereg_mr(mr)))
		die("ibv_dereg_mr: %s", strerror(ret));
	if ((ret = ibv_destroy_cq(cq)))
		die("ibv_destroy_cq: %s", strerror(ret));
	if ((ret = ibv_dealloc_pd(pd)))
		die("ibv_dealloc_pd: %s", strerror(ret));
	if (ibv_close_device(ctx))
		die("ibv_close_device: %s", strerror(errno));
	free(qps);
	free(buf);
	printf("PASS\n");
	return 0;
}
