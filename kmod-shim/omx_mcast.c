// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: UD multicast groups (ibv_attach_mcast, docs/kmod.md section 5a).
 *
 * A group is a multicast GID some UD QP of the device is attached to.  Its
 * Ethernet multicast MAC (RFC 2464 for ff00::/8, RFC 1112 for the
 * IPv4-mapped ::ffff:224.0.0.0/4) is added to the netdev's multicast list
 * with dev_mc_add() when the group's first QP attaches and removed with
 * dev_mc_del() when its last QP detaches: one netdev reference per group.
 * The netdev counts its references per address, so two groups that map to
 * one MAC add it twice and it stays until both are gone.  The provider
 * does the receiving (docs/wire.md section 13.5); the kernel keeps the
 * groups so that the netdev accepts their frames, and bounds them.
 *
 * What ib_core checks before it calls us (ib_attach_mcast): a UD QP and a
 * multicast GID.  What uverbs tracks: each QP's (GID, LID) pairs, one
 * attach per pair, detached by uverbs itself when the QP's file goes away
 * (close, kill, device removal); an explicit destroy of a QP that is still
 * attached fails with -EBUSY.  Every attachment is therefore released
 * exactly once through omx_detach_mcast(), before the QP is destroyed and
 * before dealloc_driver drops the netdev.
 *
 * Limits (module parameters, read when a device is created: the ib core
 * caches the device attributes at registration, so a device keeps the
 * values it reports): groups per device, attachments per group,
 * attachments per device.  Past one, -ENOMEM, as rxe answers.  0 means
 * none.
 *
 * Who may attach: any user of the device (joining a multicast group needs
 * no privilege, as with IP_ADD_MEMBERSHIP), but only from the network
 * namespace of the device's netdev (-EPERM otherwise): a process cannot
 * make another namespace's interface accept frames.
 *
 * Locks: sdev->mcast_lock (a mutex) protects mcast_grps, the counts and
 * every omx_qp's mcast_att.  It is taken by attach/detach (called by
 * uverbs with the QP's uobject mcast_lock held, outer) and by the sysfs
 * attribute; inside it only dev_mc_add/dev_mc_del (netif_addr_lock_bh).
 */
#include <linux/etherdevice.h>
#include <linux/moduleparam.h>
#include <linux/nsproxy.h>
#include <linux/slab.h>
#include <net/addrconf.h>
#include <net/ip.h>
#include <net/net_namespace.h>

#include "rdma_omx.h"

static unsigned int omx_max_mcast_grp = 256;
/* Writable by root; a device takes the values current at its creation. */
module_param_named(max_mcast_grp, omx_max_mcast_grp, uint, 0644);
MODULE_PARM_DESC(max_mcast_grp, "Multicast groups per device");

static unsigned int omx_max_mcast_qp_attach = 64;
module_param_named(max_mcast_qp_attach, omx_max_mcast_qp_attach, uint, 0644);
MODULE_PARM_DESC(max_mcast_qp_attach, "QP attachments per multicast group");

static unsigned int omx_max_total_mcast = 4096;
module_param_named(max_total_mcast_qp_attach, omx_max_total_mcast, uint,
		   0644);
MODULE_PARM_DESC(max_total_mcast_qp_attach,
		 "QP attachments to multicast groups per device");

struct omx_mcast_grp {
	struct list_head list;		/* on sdev->mcast_grps */
	union ib_gid gid;
	u8 mac[ETH_ALEN];
	struct list_head atts;		/* struct omx_mcast_att */
	unsigned int natt;
};

/* One successful attach: uverbs makes one per (QP, GID, LID). */
struct omx_mcast_att {
	struct list_head list;		/* on grp->atts */
	struct omx_qp *qp;
	u16 lid;
};

static int omx_limit(unsigned int v)
{
	return min_t(unsigned int, v, INT_MAX);
}

void omx_mcast_query_device(struct omx_device *sdev,
			    struct ib_device_attr *attr)
{
	attr->max_mcast_grp = sdev->mcast_max_grp;
	attr->max_mcast_qp_attach = sdev->mcast_max_qp_attach;
	attr->max_total_mcast_qp_attach = sdev->mcast_max_total;
}

void omx_mcast_init(struct omx_device *sdev)
{
	mutex_init(&sdev->mcast_lock);
	INIT_LIST_HEAD(&sdev->mcast_grps);
	sdev->mcast_max_grp = omx_limit(READ_ONCE(omx_max_mcast_grp));
	sdev->mcast_max_qp_attach =
		omx_limit(READ_ONCE(omx_max_mcast_qp_attach));
	sdev->mcast_max_total = omx_limit(READ_ONCE(omx_max_total_mcast));
}

/* Called by dealloc_driver: uverbs detached every QP before. */
void omx_mcast_destroy(struct omx_device *sdev)
{
	WARN_ON(!list_empty(&sdev->mcast_grps) || sdev->mcast_ngrp ||
		sdev->mcast_natt);
}

/* The Ethernet MAC of a multicast GID; false if it is not multicast. */
static bool omx_mcast_mac(const union ib_gid *gid, u8 *mac)
{
	const struct in6_addr *a = (const struct in6_addr *)gid->raw;

	if (ipv6_addr_v4mapped(a)) {
		if (!ipv4_is_multicast(a->s6_addr32[3]))
			return false;
		ip_eth_mc_map(a->s6_addr32[3], mac);
		return true;
	}
	if (!ipv6_addr_is_multicast(a))
		return false;
	ipv6_eth_mc_map(a, mac);
	return true;
}

static struct omx_mcast_grp *omx_mcast_find(struct omx_device *sdev,
					    const union ib_gid *gid)
{
	struct omx_mcast_grp *grp;

	lockdep_assert_held(&sdev->mcast_lock);
	list_for_each_entry(grp, &sdev->mcast_grps, list)
		if (!memcmp(grp->gid.raw, gid->raw, sizeof(gid->raw)))
			return grp;
	return NULL;
}

int omx_attach_mcast(struct ib_qp *base_qp, union ib_gid *gid, u16 lid)
{
	struct omx_device *sdev = to_omx_dev(base_qp->device);
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct omx_mcast_grp *grp;
	struct omx_mcast_att *att;
	u8 mac[ETH_ALEN];
	int rv = -ENOMEM;

	/* ib_attach_mcast() let only multicast GIDs through. */
	if (!omx_mcast_mac(gid, mac))
		return -EINVAL;
	if (!net_eq(current->nsproxy->net_ns, dev_net(sdev->netdev))) {
		omx_dbg_qp(qp, "caller not in the netdev's namespace\n");
		return -EPERM;
	}

	att = kzalloc(sizeof(*att), GFP_KERNEL_ACCOUNT);
	if (!att)
		return -ENOMEM;
	att->qp = qp;
	att->lid = lid;

	mutex_lock(&sdev->mcast_lock);
	if (sdev->mcast_natt >= sdev->mcast_max_total)
		goto out;
	grp = omx_mcast_find(sdev, gid);
	if ((grp ? grp->natt : 0) >= sdev->mcast_max_qp_attach)
		goto out;
	if (!grp) {
		if (sdev->mcast_ngrp >= sdev->mcast_max_grp)
			goto out;
		grp = kzalloc(sizeof(*grp), GFP_KERNEL_ACCOUNT);
		if (!grp)
			goto out;
		grp->gid = *gid;
		ether_addr_copy(grp->mac, mac);
		INIT_LIST_HEAD(&grp->atts);
		rv = dev_mc_add(sdev->netdev, grp->mac);
		if (rv) {
			kfree(grp);
			goto out;
		}
		list_add_tail(&grp->list, &sdev->mcast_grps);
		sdev->mcast_ngrp++;
	}
	list_add_tail(&att->list, &grp->atts);
	grp->natt++;
	sdev->mcast_natt++;
	qp->mcast_att++;
	mutex_unlock(&sdev->mcast_lock);
	omx_dbg_qp(qp, "attached to %pI6 (%pM)\n", gid->raw, mac);
	return 0;

out:
	mutex_unlock(&sdev->mcast_lock);
	kfree(att);
	return rv;
}

int omx_detach_mcast(struct ib_qp *base_qp, union ib_gid *gid, u16 lid)
{
	struct omx_device *sdev = to_omx_dev(base_qp->device);
	struct omx_qp *qp = to_omx_qp(base_qp);
	struct omx_mcast_grp *grp;
	struct omx_mcast_att *att;

	mutex_lock(&sdev->mcast_lock);
	grp = omx_mcast_find(sdev, gid);
	if (!grp)
		goto not_found;
	list_for_each_entry(att, &grp->atts, list)
		if (att->qp == qp && att->lid == lid)
			goto found;
not_found:
	mutex_unlock(&sdev->mcast_lock);
	return -EINVAL;

found:
	list_del(&att->list);
	kfree(att);
	qp->mcast_att--;
	sdev->mcast_natt--;
	if (!--grp->natt) {
		list_del(&grp->list);
		sdev->mcast_ngrp--;
		/*
		 * -ENOENT once the netdev was unregistered (it flushed its
		 * list): nothing of ours is left there either.
		 */
		dev_mc_del(sdev->netdev, grp->mac);
		kfree(grp);
	}
	mutex_unlock(&sdev->mcast_lock);
	omx_dbg_qp(qp, "detached from %pI6\n", gid->raw);
	return 0;
}

/*
 * sysfs omx_mcast (root only): one line per group, "gid mac attachments",
 * then the device's totals.  For tests and administrators.
 */
static ssize_t omx_mcast_show(struct device *device,
			      struct device_attribute *attr, char *buf)
{
	struct omx_device *sdev = to_omx_dev(rdma_device_to_ibdev(device));
	struct omx_mcast_grp *grp;
	int len = 0;

	mutex_lock(&sdev->mcast_lock);
	list_for_each_entry(grp, &sdev->mcast_grps, list) {
		if (len > PAGE_SIZE - 128)
			break;	/* the rest does not fit in one page */
		len += sysfs_emit_at(buf, len, "%pI6 %pM %u\n", grp->gid.raw,
				     grp->mac, grp->natt);
	}
	len += sysfs_emit_at(buf, len, "groups %u attachments %u\n",
			     sdev->mcast_ngrp, sdev->mcast_natt);
	mutex_unlock(&sdev->mcast_lock);
	return len;
}

struct device_attribute omx_attr_mcast = __ATTR(omx_mcast, 0400,
						omx_mcast_show, NULL);
