#include <linux/capability.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "base/caps.h"

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_cap(const struct __user_cap_data_struct d[2], int cap)
{
	return d[cap / 32].effective & (1u << (cap % 32));
}

int sp_check_caps(char *err, size_t errlen)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2] = { 0 };
	bool admin, bpf, perfmon;

	if (syscall(SYS_capget, &h, d)) {
		snprintf(err, errlen, "cannot read capabilities: %m");
		return -1;
	}
	admin = has_cap(d, CAP_SYS_ADMIN);
	bpf = admin || has_cap(d, CAP_BPF);
	perfmon = admin || has_cap(d, CAP_PERFMON);
	if (bpf && perfmon)
		return 0;
	snprintf(err, errlen, "missing %s%s%s: run as root or grant CAP_BPF and CAP_PERFMON",
		 bpf ? "" : "CAP_BPF", !bpf && !perfmon ? " and " : "",
		 perfmon ? "" : "CAP_PERFMON");
	return -1;
}
