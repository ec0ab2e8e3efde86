/*
 * libFuzzer harness: the DWARF analysis of Rust async code
 * (sp_async_analyze) on a corrupted binary written to a memfd. A rejected
 * object must come with an error; an accepted one must describe polls
 * whose nodes point at their parents before them and whose evaluation
 * over a zeroed future stays in bounds.
 */
#include "dwarf/async_dwarf.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char path[64], err[512] = "";
	int fd = fuzz_memfd(data, size, path, sizeof(path));
	struct sp_async_info info;

	memset(&info, 0, sizeof(info));
	if (sp_async_analyze(path, &info, err, sizeof(err))) {
		fuzz_check_err("async_dwarf", err, sizeof(err), NULL);
	} else {
		static uint8_t zero[4096];
		static uint64_t value[SP_ASYNC_MAX_NODES + 1];
		static bool active[SP_ASYNC_MAX_NODES + 1];

		for (size_t i = 0; i < info.n; i++) {
			const struct sp_async_poll *p = &info.polls[i];

			if (!p->name || p->n_nodes > SP_ASYNC_MAX_NODES) {
				fprintf(stderr, "async_dwarf: poll %zu malformed\n", i);
				abort();
			}
			for (size_t k = 0; k < p->n_nodes; k++) {
				if (p->nodes[k].parent >= (int)k || p->nodes[k].parent < -1) {
					fprintf(stderr, "async_dwarf: node %zu of %s has parent %d\n",
						k, p->name, p->nodes[k].parent);
					abort();
				}
			}
			sp_async_eval(p, zero, sizeof(zero), value, active);
		}
		sp_async_info_free(&info);
	}
	close(fd);
	return 0;
}
