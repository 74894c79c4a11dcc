// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * omx_rawpp: the floor under omx's numbers -- raw AF_PACKET frames between
 * two processes on one netdev, with no protocol at all.
 *
 *   omx_rawpp -i IF -S [-m lat|bw]              server (echo or sink)
 *   omx_rawpp -i IF -m lat [-s SIZE] [-n N]     client: ping-pong
 *   omx_rawpp -i IF -m bw [-s SIZE] [-n N]      client: stream
 *
 * Both processes run on the same netdev and address frames to its own MAC
 * address, the way two omx processes on one device do; each sees the
 * other's frames on their way out through an ETH_P_ALL socket with a
 * classic BPF filter (EtherType 0x88B5, a role byte, PACKET_OUTGOING), as
 * omx's loopback tap does.  Both sides busy-poll with non-blocking
 * recv(), as perftest and ibv_rc_pingpong do by default.
 *
 * lat: N round trips of SIZE-byte payloads after 100 warm-up rounds;
 * prints "lat_typical_us=" (median) and "lat_avg_us=" of half the round
 * trip, as perftest reports latency.  bw: N frames of SIZE bytes as fast
 * as the socket takes them; the server prints "bw_MB_s=" for what arrived
 * between the first frame and the end marker, and "bw_frames=".
 */
#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
#include <time.h>

#define ETYPE 0x88B5
#define HDR 16			/* Ethernet header + role byte + kind byte */
enum { TO_SERVER = 1, TO_CLIENT = 2 };
enum { K_DATA = 1, K_END = 2 };

#define die(...) do { fprintf(stderr, "FAIL: " __VA_ARGS__); \
		      fputc('\n', stderr); exit(1); } while (0)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int open_sock(const char *ifname, int role, uint8_t mac[6])
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PACKET_OUTGOING, 0, 5),
		BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETYPE, 0, 3),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 14),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)role, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, 0x40000),
		BPF_STMT(BPF_RET | BPF_K, 0),
	};
	struct sock_fprog prog = { sizeof(code) / sizeof(code[0]), code };
	struct sockaddr_ll sll = { .sll_family = AF_PACKET };
	struct ifreq ifr = { 0 };
	int fd, big = 8 << 20;

	fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
		die("SO_ATTACH_FILTER: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		die("SIOCGIFHWADDR %s: %s", ifname, strerror(errno));
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	sll.sll_protocol = htons(ETH_P_ALL);
	sll.sll_ifindex = (int)if_nametoindex(ifname);
	if (!sll.sll_ifindex)
		die("no interface %s", ifname);
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind: %s", strerror(errno));
	return fd;
}

static void frame(uint8_t *f, const uint8_t mac[6], int role, int kind)
{
	memcpy(f, mac, 6);
	memcpy(f + 6, mac, 6);
	f[12] = ETYPE >> 8;
	f[13] = ETYPE & 0xff;
	f[14] = (uint8_t)role;
	f[15] = (uint8_t)kind;
}

static void xmit(int fd, const uint8_t *f, size_t len)
{
	while (send(fd, f, len, 0) < 0)
		if (errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
			die("send: %s", strerror(errno));
}

static ssize_t rcv(int fd, uint8_t *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(fd, buf, len, MSG_DONTWAIT);
	while (n < 0 && (errno == EAGAIN || errno == EINTR));
	if (n < 0)
		die("recv: %s", strerror(errno));
	return n;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	const char *ifname = NULL, *mode = "lat";
	size_t size = 2, len;
	long n = 10000, i;
	int server = 0, opt, fd;
	uint8_t mac[6], tx[9216], rx[9216];
	double *rtt, t0, t1, sum = 0;

	while ((opt = getopt(argc, argv, "i:Sm:s:n:")) != -1) {
		switch (opt) {
		case 'i': ifname = optarg; break;
		case 'S': server = 1; break;
		case 'm': mode = optarg; break;
		case 's': size = (size_t)atol(optarg); break;
		case 'n': n = atol(optarg); break;
		default: goto usage;
		}
	}
	if (!ifname || n < 1 || size + HDR > sizeof(tx) ||
	    (strcmp(mode, "lat") && strcmp(mode, "bw")))
		goto usage;
	len = HDR + size < 60 ? 60 : HDR + size;
	memset(tx, 0x5a, sizeof(tx));
	fd = open_sock(ifname, server ? TO_SERVER : TO_CLIENT, mac);

	if (server && !strcmp(mode, "lat")) {
		frame(tx, mac, TO_CLIENT, K_DATA);
		for (;;) {
			ssize_t got = rcv(fd, rx, sizeof(rx));

			if (rx[15] == K_END)
				return 0;
			xmit(fd, tx, (size_t)got);
		}
	}
	if (server) {
		long frames = 0;
		double bytes = 0;

		t0 = 0;
		for (;;) {
			ssize_t got = rcv(fd, rx, sizeof(rx));

			if (rx[15] == K_END)
				break;
			if (!frames++)
				t0 = now_us();
			bytes += (double)got - HDR;
		}
		t1 = now_us();
		printf("bw_frames=%ld\nbw_MB_s=%.2f\n", frames,
		       frames > 1 ? bytes / (t1 - t0) : 0.0);
		return 0;
	}

	frame(tx, mac, TO_SERVER, K_DATA);
	if (!strcmp(mode, "bw")) {
		for (i = 0; i < n; i++)
			xmit(fd, tx, len);
		usleep(200000);
		frame(tx, mac, TO_SERVER, K_END);
		for (i = 0; i < 5; i++)
			xmit(fd, tx, 60);
		return 0;
	}
	rtt = calloc((size_t)n, sizeof(*rtt));
	if (!rtt)
		die("calloc");
	for (i = -100; i < n; i++) {
		t0 = now_us();
		xmit(fd, tx, len);
		rcv(fd, rx, sizeof(rx));
		t1 = now_us();
		if (i >= 0)
			rtt[i] = (t1 - t0) / 2;
	}
	frame(tx, mac, TO_SERVER, K_END);
	for (i = 0; i < 5; i++)
		xmit(fd, tx, 60);
	for (i = 0; i < n; i++)
		sum += rtt[i];
	qsort(rtt, (size_t)n, sizeof(*rtt), cmp);
	printf("lat_typical_us=%.2f\nlat_avg_us=%.2f\nlat_p99_us=%.2f\n",
	       rtt[n / 2], sum / (double)n, rtt[(n * 99) / 100]);
	free(rtt);
	return 0;
usage:
	fprintf(stderr, "usage: %s -i IF [-S] [-m lat|bw] [-s SIZE] [-n N]\n",
		argv[0]);
	return 2;
}
