/* Host smoke test driver for libomx-rdmav34.so (see tests/smoke.rs).
 *
 *   omx_smoke dlopen <path>   dlopen(path, RTLD_NOW) exactly as libibverbs'
 *                             load_driver() does; check the exported table.
 *   omx_smoke list            ibv_get_device_list() and print each device
 *                             name and its GUID; exit 0 even with no devices.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <infiniband/verbs.h>

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "dlopen") == 0) {
		struct ibv_device **l = ibv_get_device_list(NULL); /* load libibverbs state */
		void *h;
		const char *const *name;

		if (l)
			ibv_free_device_list(l);
		h = dlopen(argv[2], RTLD_NOW);
		if (!h) {
			fprintf(stderr, "dlopen failed: %s\n", dlerror());
			return 2;
		}
		/* verbs_device_ops.name is the first member */
		name = dlsym(h, "verbs_provider_omx");
		if (!name || strcmp(*name, "omx") != 0) {
			fprintf(stderr, "verbs_provider_omx missing or wrong\n");
			return 3;
		}
		printf("loaded provider %s\n", *name);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "list") == 0) {
		int n = 0, i;
		struct ibv_device **l = ibv_get_device_list(&n);

		if (!l) {
			perror("ibv_get_device_list");
			return 2;
		}
		printf("devices: %d\n", n);
		for (i = 0; i < n; i++)
			printf("device %s %s\n", ibv_get_device_name(l[i]),
			       l[i]->dev_name);
		ibv_free_device_list(l);
		return 0;
	}
	fprintf(stderr, "usage: %s dlopen <path> | list\n", argv[0]);
	return 1;
}
