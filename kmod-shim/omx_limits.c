// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * rdma_omx: per-user limits.
 *
 * Every endpoint (ucontext), PD, CQ, QP, MR, SRQ and MW is charged to the
 * effective user that opened the context (current_euid() in
 * alloc_ucontext), never to whoever issues a later command: a context's
 * file passed to another process keeps charging its opener.  Past a limit the command fails with
 * -EDQUOT and a rate-limited message names the module parameter.  The
 * limits are per device, like the resources they protect (endpoints, QP
 * numbers and MR/MW keys are device-wide name spaces); the device-wide
 * limits (OMX_MAX_*) still apply on top.
 *
 * References and locks:
 *  users_xa (kuid value -> omx_user) and every record's context count are
 *  under sdev->users_lock (a mutex; alloc/dealloc_ucontext sleep anyway).
 *  A record is created by its user's first context and freed by the last
 *  dealloc_ucontext: uverbs destroys every object of a context before
 *  dealloc_ucontext, so by then every other count of the record is zero.
 *  Objects keep a plain pointer to their record, valid because their
 *  context outlives them.  The other counts are atomics, so the object
 *  paths take no lock.  users_lock is a leaf.
 */
#include <linux/cred.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>

#include "rdma_omx.h"

/*
 * Defaults: a quarter of each device-wide limit, so at least four users
 * always find room, and generous for one job: an MPI job opens one context
 * per rank (1024 contexts is four per core on a 256-core node), each rank
 * a few CQs/PDs and one QP per peer.
 */
static unsigned int omx_user_limit[OMX_RES_NUM] = {
	[OMX_RES_CTX] = 1024,
	[OMX_RES_PD] = 16384,
	[OMX_RES_CQ] = 16384,
	[OMX_RES_QP] = 16384,
	[OMX_RES_MR] = 262144,
	[OMX_RES_SRQ] = 16384,
	[OMX_RES_MW] = 65536,
};

static const char *const omx_user_limit_name[OMX_RES_NUM] = {
	[OMX_RES_CTX] = "max_contexts_per_user",
	[OMX_RES_PD] = "max_pds_per_user",
	[OMX_RES_CQ] = "max_cqs_per_user",
	[OMX_RES_QP] = "max_qps_per_user",
	[OMX_RES_MR] = "max_mrs_per_user",
	[OMX_RES_SRQ] = "max_srqs_per_user",
	[OMX_RES_MW] = "max_mws_per_user",
};

/* Writable at run time (root); a lower limit does not take objects away. */
#define OMX_USER_LIMIT_PARAM(name, res, what)				\
	module_param_named(name, omx_user_limit[res], uint, 0644);	\
	MODULE_PARM_DESC(name, what " one user may hold per device, 0 = no limit")

OMX_USER_LIMIT_PARAM(max_contexts_per_user, OMX_RES_CTX,
		     "Contexts (endpoints)");
OMX_USER_LIMIT_PARAM(max_pds_per_user, OMX_RES_PD, "PDs");
OMX_USER_LIMIT_PARAM(max_cqs_per_user, OMX_RES_CQ, "CQs");
OMX_USER_LIMIT_PARAM(max_qps_per_user, OMX_RES_QP, "QPs");
OMX_USER_LIMIT_PARAM(max_mrs_per_user, OMX_RES_MR, "MRs");
OMX_USER_LIMIT_PARAM(max_srqs_per_user, OMX_RES_SRQ, "SRQs");
OMX_USER_LIMIT_PARAM(max_mws_per_user, OMX_RES_MW, "MWs");

/* Charge one object of @res to @user; -EDQUOT past the user's limit. */
int omx_user_charge(struct omx_device *sdev, struct omx_user *user,
		    enum omx_res res)
{
	unsigned int max = READ_ONCE(omx_user_limit[res]);

	/* Counts stay far below INT_MAX: the device-wide limits bound them. */
	if (atomic_inc_return(&user->count[res]) <= max || !max)
		return 0;
	atomic_dec(&user->count[res]);
	ibdev_warn_ratelimited(&sdev->base_dev,
			       "uid %u reached %s (%u): -EDQUOT\n",
			       from_kuid_munged(current_user_ns(), user->uid),
			       omx_user_limit_name[res], max);
	return -EDQUOT;
}

/*
 * Find or create the caller's record and charge it one context.  Returns
 * -EDQUOT past max_contexts_per_user.
 */
int omx_user_get(struct omx_device *sdev, struct omx_user **userp)
{
	kuid_t uid = current_euid();
	struct omx_user *user;
	int rv;

	mutex_lock(&sdev->users_lock);
	user = xa_load(&sdev->users_xa, __kuid_val(uid));
	if (!user) {
		user = kzalloc(sizeof(*user), GFP_KERNEL_ACCOUNT);
		if (!user) {
			rv = -ENOMEM;
			goto out;
		}
		user->uid = uid;
		rv = xa_err(xa_store(&sdev->users_xa, __kuid_val(uid), user,
				     GFP_KERNEL_ACCOUNT));
		if (rv) {
			kfree(user);
			goto out;
		}
	}
	rv = omx_user_charge(sdev, user, OMX_RES_CTX);
	if (rv && !atomic_read(&user->count[OMX_RES_CTX])) {
		xa_erase(&sdev->users_xa, __kuid_val(uid));
		kfree(user);
	}
	if (!rv)
		*userp = user;
out:
	mutex_unlock(&sdev->users_lock);
	return rv;
}

/* Uncharge a context; the last one frees the record. */
void omx_user_put(struct omx_device *sdev, struct omx_user *user)
{
	enum omx_res res;

	mutex_lock(&sdev->users_lock);
	if (atomic_dec_and_test(&user->count[OMX_RES_CTX])) {
		for (res = OMX_RES_PD; res < OMX_RES_NUM; res++)
			WARN_ON(atomic_read(&user->count[res]));
		xa_erase(&sdev->users_xa, __kuid_val(user->uid));
		kfree(user);
	}
	mutex_unlock(&sdev->users_lock);
}

void omx_user_uncharge(struct omx_user *user, enum omx_res res)
{
	WARN_ON_ONCE(atomic_dec_return(&user->count[res]) < 0);
}

/* dealloc_driver: every context is gone, so is every record. */
void omx_users_destroy(struct omx_device *sdev)
{
	WARN_ON(!xa_empty(&sdev->users_xa));
	xa_destroy(&sdev->users_xa);
	mutex_destroy(&sdev->users_lock);
}

/*
 * sysfs omx_users (root only): one line per user with objects on the
 * device, "uid contexts pds cqs qps mrs srqs mws".  For tests and
 * administrators.
 */
static ssize_t omx_users_show(struct device *device,
			      struct device_attribute *attr, char *buf)
{
	struct ib_device *base_dev = rdma_device_to_ibdev(device);
	struct omx_device *sdev = to_omx_dev(base_dev);
	struct omx_user *user;
	unsigned long index;
	int len = 0;

	mutex_lock(&sdev->users_lock);
	xa_for_each(&sdev->users_xa, index, user) {
		if (len > PAGE_SIZE - 64)
			break;	/* the rest does not fit in one page */
		len += sysfs_emit_at(buf, len, "%u %d %d %d %d %d %d %d\n",
				     from_kuid_munged(current_user_ns(),
						      user->uid),
				     atomic_read(&user->count[OMX_RES_CTX]),
				     atomic_read(&user->count[OMX_RES_PD]),
				     atomic_read(&user->count[OMX_RES_CQ]),
				     atomic_read(&user->count[OMX_RES_QP]),
				     atomic_read(&user->count[OMX_RES_MR]),
				     atomic_read(&user->count[OMX_RES_SRQ]),
				     atomic_read(&user->count[OMX_RES_MW]));
	}
	mutex_unlock(&sdev->users_lock);
	return len;
}

struct device_attribute omx_attr_users = __ATTR(omx_users, 0400,
						omx_users_show, NULL);
