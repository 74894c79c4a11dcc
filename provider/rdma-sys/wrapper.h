/* Input of bindgen (see build.rs): rdma-core's private provider header and
 * the rdma_omx user/kernel ABI. Nothing here is restated by hand. */
#include <infiniband/driver.h>
#include <rdma/ib_user_ioctl_cmds.h>
#include <rdma_omx_abi.h>
