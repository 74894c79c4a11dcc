// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: module init/exit, device creation through rdma_link_ops,
 * netdev notifier.
 *
 * References and locks in this file:
 *
 *  omx_dev_list      every omx_device between "about to register" and
 *                    dealloc_driver.  Protected by omx_dev_list_lock (a
 *                    mutex: every user sleeps anyway).  An entry found on
 *                    the list is still allocated (dealloc_driver, which
 *                    unlinks it, has not returned), but may be unregistered
 *                    or not yet registered: pin it with ib_device_try_get(),
 *                    which fails in both cases, before using it after the
 *                    lock is dropped.
 *  omx_link_mutex    serializes newlink so that "one ib_device per netdev"
 *                    is checked and claimed atomically.  Taken outside RTNL
 *                    (ib_register_device() takes RTNL for the RoCE GID
 *                    rescan).
 *  RTNL              held by every netdev notifier call.  It serializes
 *                    writers of omx_device.last_state (query_port reads it
 *                    with READ_ONCE) and protects the netdev fields we read.
 *
 *  Lock order: omx_link_mutex -> rtnl_lock -> omx_dev_list_lock.
 *
 *  The notifier never registers and never waits for an unregistration: it
 *  queues one with ib_unregister_device_queued() (ib_core's ib_unreg_wq).
 *  The ib core calls ops.dealloc_driver at the end of the first completed
 *  unregistration; that drops our netdev reference, so the netdev's
 *  unregister_netdevice() can finish.
 */
#include <linux/etherdevice.h>
#include <linux/if_arp.h>
#include <linux/module.h>
#include <linux/rtnetlink.h>
#include <net/addrconf.h>
#include <rdma/rdma_netlink.h>

#include "rdma_omx.h"

MODULE_AUTHOR("omx-verbs authors");
MODULE_DESCRIPTION("omx-verbs shadow RDMA device for the user-space Open-MX style data path");
MODULE_LICENSE("Dual BSD/GPL");
MODULE_SOFTDEP("pre: ib_uverbs");

struct workqueue_struct *omx_wq;

static LIST_HEAD(omx_dev_list);
static DEFINE_MUTEX(omx_dev_list_lock);
static DEFINE_MUTEX(omx_link_mutex);

enum ib_port_state omx_netdev_port_state(struct net_device *netdev)
{
	if (netif_running(netdev) && netif_carrier_ok(netdev))
		return IB_PORT_ACTIVE;
	return IB_PORT_DOWN;
}

/*
 * Largest IB MTU whose payload plus OMX_FRAME_OVERHEAD fits in the netdev
 * MTU, read live: 1500 -> IB_MTU_1024, 9000 -> IB_MTU_4096.  A netdev MTU
 * below 256 + OMX_FRAME_OVERHEAD still reports IB_MTU_256 (the smallest IB
 * MTU); the provider then refuses that path MTU in modify_qp (EINVAL), as
 * it refuses any whose frames the netdev cannot carry.
 */
enum ib_mtu omx_netdev_ib_mtu(struct net_device *netdev)
{
	unsigned int mtu = READ_ONCE(netdev->mtu);
	enum ib_mtu ib_mtu;

	for (ib_mtu = IB_MTU_4096; ib_mtu > IB_MTU_256; ib_mtu--)
		if (ib_mtu_enum_to_int(ib_mtu) + OMX_FRAME_OVERHEAD <= mtu)
			break;
	return ib_mtu;
}

static ssize_t omx_abi_version_show(struct device *device,
				    struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", OMX_UVERBS_ABI_VERSION);
}

/* Named by the ABI header, read by the provider's match_device(). */
static struct device_attribute omx_attr_abi_version = {
	.attr = { .name = OMX_SYSFS_ABI_ATTR, .mode = 0444 },
	.show = omx_abi_version_show,
};

static struct attribute *omx_dev_attributes[] = {
	&omx_attr_abi_version.attr,
	&omx_attr_users.attr,
	&omx_attr_mcast.attr,
	NULL
};

static const struct attribute_group omx_attr_group = {
	.attrs = omx_dev_attributes,
};

/*
 * Called by the ib core once the device is unregistered (or from
 * ib_dealloc_device() when registration failed), right before the
 * ib_device memory is released.  Nothing else of ours runs on this device
 * afterwards.
 */
static void omx_device_dealloc_driver(struct ib_device *base_dev)
{
	struct omx_device *sdev = to_omx_dev(base_dev);

	mutex_lock(&omx_dev_list_lock);
	list_del_init(&sdev->list);
	mutex_unlock(&omx_dev_list_lock);

	WARN_ON(atomic_read(&sdev->num_ctx) || atomic_read(&sdev->num_pd) ||
		atomic_read(&sdev->num_cq) || atomic_read(&sdev->num_qp) ||
		atomic_read(&sdev->num_mr) || atomic_read(&sdev->num_srq) ||
		atomic_read(&sdev->num_mw));
	WARN_ON(!xa_empty(&sdev->endpoint_xa));
	xa_destroy(&sdev->endpoint_xa);
	xa_destroy(&sdev->mr_xa);
	omx_mcast_destroy(sdev);
	omx_users_destroy(sdev);
	netdev_put(sdev->netdev, &sdev->netdev_tracker);
	sdev->netdev = NULL;
}

static const struct ib_device_ops omx_device_ops = {
	.owner = THIS_MODULE,
	.driver_id = RDMA_DRIVER_UNKNOWN,
	.uverbs_abi_ver = OMX_UVERBS_ABI_VERSION,

	.alloc_mw = omx_alloc_mw,
	.alloc_pd = omx_alloc_pd,
	.alloc_ucontext = omx_alloc_ucontext,
	.attach_mcast = omx_attach_mcast,
	.create_cq = omx_create_cq,
	.create_qp = omx_create_qp,
	.create_srq = omx_create_srq,
	.dealloc_driver = omx_device_dealloc_driver,
	.dealloc_mw = omx_dealloc_mw,
	.dealloc_pd = omx_dealloc_pd,
	.dealloc_ucontext = omx_dealloc_ucontext,
	.dereg_mr = omx_dereg_mr,
	.destroy_cq = omx_destroy_cq,
	.destroy_qp = omx_destroy_qp,
	.destroy_srq = omx_destroy_srq,
	.detach_mcast = omx_detach_mcast,
	.device_group = &omx_attr_group,
	.disassociate_ucontext = omx_disassociate_ucontext,
	.fill_res_cq_entry = omx_fill_res_cq_entry,
	.fill_res_mr_entry = omx_fill_res_mr_entry,
	.fill_res_qp_entry = omx_fill_res_qp_entry,
	.get_dev_fw_str = omx_get_dev_fw_str,
	.get_link_layer = omx_get_link_layer,
	.get_port_immutable = omx_get_port_immutable,
	.modify_qp = omx_modify_qp,
	.modify_srq = omx_modify_srq,
	.query_device = omx_query_device,
	.query_pkey = omx_query_pkey,
	.query_port = omx_query_port,
	.query_qp = omx_query_qp,
	.reg_user_mr = omx_reg_user_mr,

	INIT_RDMA_OBJ_SIZE(ib_cq, omx_cq, base_cq),
	INIT_RDMA_OBJ_SIZE(ib_mw, omx_mw, base_mw),
	INIT_RDMA_OBJ_SIZE(ib_pd, omx_pd, base_pd),
	INIT_RDMA_OBJ_SIZE(ib_qp, omx_qp, base_qp),
	INIT_RDMA_OBJ_SIZE(ib_srq, omx_srq, base_srq),
	INIT_RDMA_OBJ_SIZE(ib_ucontext, omx_ucontext, base_ucontext),
};

/*
 * Find the device bound to @netdev and pin it.  Returns NULL if there is
 * none or if it is not (or no longer) registered.  Release with
 * ib_device_put().
 */
static struct omx_device *omx_device_get_by_netdev(struct net_device *netdev)
{
	struct omx_device *sdev, *found = NULL;

	mutex_lock(&omx_dev_list_lock);
	list_for_each_entry(sdev, &omx_dev_list, list) {
		if (sdev->netdev == netdev) {
			if (ib_device_try_get(&sdev->base_dev))
				found = sdev;
			break;
		}
	}
	mutex_unlock(&omx_dev_list_lock);
	return found;
}

/* Is any device, registered or not, bound to @netdev?  Under omx_link_mutex. */
static bool omx_netdev_is_bound(struct net_device *netdev)
{
	struct omx_device *sdev;
	bool bound = false;

	mutex_lock(&omx_dev_list_lock);
	list_for_each_entry(sdev, &omx_dev_list, list) {
		if (sdev->netdev == netdev) {
			bound = true;
			break;
		}
	}
	mutex_unlock(&omx_dev_list_lock);
	return bound;
}

static void omx_port_event(struct omx_device *sdev, enum ib_event_type type)
{
	struct ib_event event = {
		.device = &sdev->base_dev,
		.event = type,
		.element.port_num = 1,
	};

	ib_dispatch_event(&event);
}

/* Report a port state transition, if any.  Caller holds RTNL. */
static void omx_port_state_sync(struct omx_device *sdev)
{
	enum ib_port_state state;

	ASSERT_RTNL();
	state = omx_netdev_port_state(sdev->netdev);
	if (state == sdev->last_state)
		return;

	omx_dbg(&sdev->base_dev, "port state %d -> %d\n", sdev->last_state,
		state);
	WRITE_ONCE(sdev->last_state, state);
	omx_port_event(sdev, state == IB_PORT_ACTIVE ? IB_EVENT_PORT_ACTIVE :
						       IB_EVENT_PORT_ERR);
}

static struct omx_device *omx_device_create(struct net_device *netdev)
{
	struct omx_device *sdev;
	struct ib_device *base_dev;
	int rv;

	sdev = ib_alloc_device(omx_device, base_dev);
	if (!sdev)
		return ERR_PTR(-ENOMEM);

	base_dev = &sdev->base_dev;
	INIT_LIST_HEAD(&sdev->list);
	xa_init_flags(&sdev->endpoint_xa, XA_FLAGS_ALLOC);
	xa_init_flags(&sdev->mr_xa, XA_FLAGS_ALLOC);
	/*
	 * Start the endpoint cursor anywhere, so a module reload or a new
	 * device does not hand out endpoint 1 (and its QP numbers) again.
	 */
	sdev->endpoint_next = OMX_ENDPOINT_MIN +
		get_random_u32_below(OMX_ENDPOINT_MAX - OMX_ENDPOINT_MIN + 1);
	xa_init(&sdev->users_xa);
	mutex_init(&sdev->users_lock);
	omx_mcast_init(sdev);
	netdev_hold(netdev, &sdev->netdev_tracker, GFP_KERNEL);
	sdev->netdev = netdev;
	sdev->last_state = omx_netdev_port_state(netdev);

	ib_set_device_ops(base_dev, &omx_device_ops);
	addrconf_addr_eui48((u8 *)&base_dev->node_guid, netdev->dev_addr);
	base_dev->node_type = RDMA_NODE_IB_CA;
	base_dev->phys_port_cnt = 1;
	base_dev->num_comp_vectors = 1;
	strscpy(base_dev->node_desc, "omx-verbs", sizeof(base_dev->node_desc));
	if (IS_ENABLED(CONFIG_INFINIBAND_USER_ACCESS))
		base_dev->driver_def = omx_uapi_defs;

	rv = ib_device_set_netdev(base_dev, netdev, 1);
	if (rv) {
		ib_dealloc_device(base_dev);
		return ERR_PTR(rv);
	}
	return sdev;
}

static bool omx_netdev_qualified(struct net_device *netdev)
{
	return netdev->type == ARPHRD_ETHER &&
	       netdev->addr_len == ETH_ALEN &&
	       !(netdev->flags & IFF_LOOPBACK);
}

/*
 * rdma link add <name> type omx netdev <netdev>
 *
 * Called by RDMA netlink, without RTNL, with a reference on @netdev.  The
 * netdev may start unregistering at any time: the NETDEV_UNREGISTER
 * notifier cannot see a device that is not registered yet, so the state
 * (and the netns) is checked again under RTNL once the device is
 * registered; the notifier and this check both run under RTNL, so one of
 * them queues the unregistration.
 */
static int omx_newlink(const char *ibdev_name, struct net_device *netdev)
{
	/* Compared only: a move to another netns is an unregistration. */
	const struct net *net = dev_net(netdev);
	struct omx_device *sdev;
	struct ib_device *other;
	bool gone;
	int rv;

	if (!omx_netdev_qualified(netdev)) {
		pr_err(DRV_NAME ": %s: netdev %s is not an Ethernet device (type %u%s)\n",
		       ibdev_name, netdev_name(netdev), netdev->type,
		       netdev->flags & IFF_LOOPBACK ? ", loopback" : "");
		return -EINVAL;
	}
	/* libibverbs would hand such a device to librxe (name match). */
	if (strstr(ibdev_name, "rxe")) {
		pr_err(DRV_NAME ": %s: device names containing \"rxe\" are claimed by librxe, choose another name\n",
		       ibdev_name);
		return -EINVAL;
	}

	mutex_lock(&omx_link_mutex);
	if (omx_netdev_is_bound(netdev)) {
		pr_err(DRV_NAME ": %s: netdev %s already has an omx device\n",
		       ibdev_name, netdev_name(netdev));
		rv = -EEXIST;
		goto out_unlock;
	}
	other = ib_device_get_by_name(ibdev_name, RDMA_DRIVER_UNKNOWN);
	if (other) {
		ib_device_put(other);
		pr_err(DRV_NAME ": %s: an RDMA device with this name exists\n",
		       ibdev_name);
		rv = -EEXIST;
		goto out_unlock;
	}

	sdev = omx_device_create(netdev);
	if (IS_ERR(sdev)) {
		rv = PTR_ERR(sdev);
		pr_err(DRV_NAME ": %s: cannot create device: %d\n",
		       ibdev_name, rv);
		goto out_unlock;
	}

	/*
	 * Our own reference: once registered, "rdma link delete" or a queued
	 * unregistration may free the device at any time.
	 */
	get_device(&sdev->base_dev.dev);

	mutex_lock(&omx_dev_list_lock);
	list_add_tail(&sdev->list, &omx_dev_list);
	mutex_unlock(&omx_dev_list_lock);

#ifdef OMX_HAS_NAME_ASSIGN_TYPE
	ib_mark_name_assigned_by_user(&sdev->base_dev);
#endif
	rv = ib_register_device(&sdev->base_dev, ibdev_name, NULL);
	if (rv) {
		pr_err(DRV_NAME ": %s: ib_register_device failed: %d\n",
		       ibdev_name, rv);
		/* Unlinks it through dealloc_driver. */
		ib_dealloc_device(&sdev->base_dev);
		put_device(&sdev->base_dev.dev);
		goto out_unlock;
	}

	rtnl_lock();
	gone = netdev->reg_state != NETREG_REGISTERED ||
	       !net_eq(dev_net(netdev), net);
	if (ib_device_try_get(&sdev->base_dev)) {
		if (gone)
			ib_unregister_device_queued(&sdev->base_dev);
		else
			omx_port_state_sync(sdev);
		ib_device_put(&sdev->base_dev);
	}
	rtnl_unlock();

	if (gone) {
		pr_err(DRV_NAME ": %s: netdev %s went away during creation\n",
		       ibdev_name, netdev_name(netdev));
		rv = -ENODEV;
	} else {
		ibdev_info(&sdev->base_dev, "attached to netdev %s\n",
			   netdev_name(netdev));
	}
	put_device(&sdev->base_dev.dev);

out_unlock:
	mutex_unlock(&omx_link_mutex);
	return rv;
}

static struct rdma_link_ops omx_link_ops = {
	.type = "omx",
	.newlink = omx_newlink,
};

/*
 * Netdev notifier, called under RTNL.  Handled: UP, DOWN, CHANGE (port
 * state, events on transitions only), CHANGEADDR (node GUID; ib_core's
 * roce_gid_mgmt updates the GID table itself), UNREGISTER (queue our
 * unregistration; also sent when the netdev moves to another netns).
 * Deliberately ignored: CHANGEMTU (the port MTU is computed live),
 * CHANGENAME (we key on the net_device pointer), REGISTER (no auto-attach),
 * GOING_DOWN, PRE_UP, FEAT_CHANGE, CHANGEUPPER, CHANGELOWERSTATE,
 * PRECHANGEMTU, PRE_CHANGEADDR, BONDING_INFO, NOTIFY_PEERS, REBOOT and
 * every other event.  The data path is in user space and sees the netdev
 * itself (AF_PACKET returns ENETDOWN/ENXIO).
 */
static int omx_netdev_event(struct notifier_block *nb, unsigned long event,
			    void *arg)
{
	struct net_device *netdev = netdev_notifier_info_to_dev(arg);
	struct omx_device *sdev;
	__be64 guid;

	switch (event) {
	case NETDEV_UP:
	case NETDEV_DOWN:
	case NETDEV_CHANGE:
	case NETDEV_CHANGEADDR:
	case NETDEV_UNREGISTER:
		break;
	default:
		return NOTIFY_DONE;
	}

	sdev = omx_device_get_by_netdev(netdev);
	if (!sdev)
		return NOTIFY_DONE;

	switch (event) {
	case NETDEV_UP:
	case NETDEV_DOWN:
	case NETDEV_CHANGE:
		omx_port_state_sync(sdev);
		break;

	case NETDEV_CHANGEADDR:
		addrconf_addr_eui48((u8 *)&guid, netdev->dev_addr);
		WRITE_ONCE(sdev->base_dev.node_guid, guid);
		omx_port_event(sdev, IB_EVENT_LID_CHANGE);
		break;

	case NETDEV_UNREGISTER:
		omx_dbg(&sdev->base_dev, "netdev %s unregistering\n",
			netdev_name(netdev));
		ib_unregister_device_queued(&sdev->base_dev);
		break;
	}
	ib_device_put(&sdev->base_dev);

	return NOTIFY_OK;
}

static struct notifier_block omx_netdev_nb = {
	.notifier_call = omx_netdev_event,
};

/*
 * Unregister every device we still own.  The list lock is dropped around
 * ib_unregister_device() because dealloc_driver takes it.  A concurrent
 * queued unregistration of the same device is serialized by the core's
 * unregistration_lock; whichever runs first unlinks the entry through
 * dealloc_driver, so the loop terminates.  With disassociate_ucontext
 * present, none of this waits for applications: their contexts are torn
 * down and they get IBV_EVENT_DEVICE_FATAL.
 */
static void omx_unregister_all(void)
{
	struct omx_device *sdev;

	for (;;) {
		mutex_lock(&omx_dev_list_lock);
		sdev = list_first_entry_or_null(&omx_dev_list,
						struct omx_device, list);
		if (sdev)
			get_device(&sdev->base_dev.dev);
		mutex_unlock(&omx_dev_list_lock);
		if (!sdev)
			break;

		ib_unregister_device(&sdev->base_dev);
		put_device(&sdev->base_dev.dev);
	}
}

static int __init omx_init_module(void)
{
	int rv;

	BUILD_BUG_ON(OMX_GID_TBL_LEN < 2);

	omx_wq = alloc_workqueue("rdma_omx", WQ_HIGHPRI, 0);
	if (!omx_wq)
		return -ENOMEM;

	/* Replays REGISTER/UP for existing netdevs: ignored, no devices yet. */
	rv = register_netdevice_notifier(&omx_netdev_nb);
	if (rv) {
		destroy_workqueue(omx_wq);
		return rv;
	}
	rdma_link_register(&omx_link_ops);

	pr_info(DRV_NAME ": loaded, ABI %u\n", OMX_UVERBS_ABI_VERSION);
	return 0;
}

static void __exit omx_exit_module(void)
{
	/* Waits for a newlink in progress (link_ops_rwsem). */
	rdma_link_unregister(&omx_link_ops);
	/* Waits for a notifier call in progress; no new queued unregs. */
	unregister_netdevice_notifier(&omx_netdev_nb);

	omx_unregister_all();

	/* Every CQ and QP is destroyed, so none of their work is left. */
	destroy_workqueue(omx_wq);
	pr_info(DRV_NAME ": unloaded\n");
}

module_init(omx_init_module);
module_exit(omx_exit_module);

MODULE_ALIAS_RDMA_LINK("omx");
