/*
 * `spanprobe --version [--json]`: the version, the libbpf it was built
 * with, the kernel, and what the kernel offers (attach/kernel_features.c),
 * each feature found by trying it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <bpf/libbpf.h>
#include "attach/kernel_features.h"
#include "cli/cli.h"
#include "output/span_print.h"
#include "version.h"

static void print_text(const struct utsname *u, const struct sp_feature_result *f)
{
	printf("spanprobe %s\n", SP_VERSION_FULL);
	printf("libbpf %u.%u\n", libbpf_major_version(), libbpf_minor_version());
	printf("kernel %s %s\n", u->release, u->machine);
	for (int i = 0; i < SP_FEAT_COUNT; i++) {
		const struct sp_feature_result *r = &f[i];

		printf("  %-26s %-7s %s\n", sp_feature_label((enum sp_feature)i),
		       !r->known ? "unknown" : r->yes ? "yes" : "no", r->detail);
	}
}

static void print_json(const struct utsname *u, const struct sp_feature_result *f)
{
	char lb[32];

	snprintf(lb, sizeof(lb), "%u.%u", libbpf_major_version(), libbpf_minor_version());
	fputs("{\"version\":", stdout);
	sp_print_json_string(stdout, SP_VERSION);
	fputs(",\"build\":", stdout);
	sp_print_json_string(stdout, SP_VERSION_FULL);
	fputs(",\"libbpf\":", stdout);
	sp_print_json_string(stdout, lb);
	fputs(",\"kernel\":", stdout);
	sp_print_json_string(stdout, u->release);
	fputs(",\"features\":{", stdout);
	for (int i = 0; i < SP_FEAT_COUNT; i++) {
		printf("%s\"%s\":{\"available\":%s,\"detail\":", i ? "," : "",
		       sp_feature_key((enum sp_feature)i),
		       !f[i].known ? "null" : f[i].yes ? "true" : "false");
		sp_print_json_string(stdout, f[i].detail);
		putchar('}');
	}
	fputs("}}\n", stdout);
}

int sp_cmd_version(int argc, char **argv)
{
	struct sp_feature_result f[SP_FEAT_COUNT];
	struct utsname u;
	bool json = false;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else {
			fprintf(stderr, "spanprobe: --version: unknown option '%s' (only --json)\n",
				argv[i]);
			return 2;
		}
	}
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	sp_kernel_features_probe(f);
	if (json)
		print_json(&u, f);
	else
		print_text(&u, f);
	return fflush(stdout) ? 1 : 0;
}
