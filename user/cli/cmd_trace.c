/* `spanprobe attach` and `spanprobe run`. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include "base/caps.h"
#include "cli/cli.h"
#include "cli/trace_session.h"

enum { OPT_MIN_SPAN = 256, OPT_MIN_QUERY, OPT_DURATION, OPT_STRICT,
       OPT_EXIT_PROBE, OPT_NO_MULTI, OPT_ATTACH_MODE,
       OPT_MICROMEGAS, OPT_OTLP, OPT_OTLP_GZIP, OPT_PERFETTO, OPT_RING,
       OPT_STATS, OPT_PRUNE, OPT_EXPAND, OPT_DEBUGINFO, OPT_EXE, OPT_FOLLOW, OPT_MAX_PROCS,
       OPT_REDACT };

/* attach --exe, repeatable */
#define MAX_EXES 64

static const struct option trace_options[] = {
	{ "pid", required_argument, NULL, 'p' },
	{ "symbols", required_argument, NULL, 's' },
	{ "output", required_argument, NULL, 'o' },
	{ "min-span", required_argument, NULL, OPT_MIN_SPAN },
	{ "min-query", required_argument, NULL, OPT_MIN_QUERY },
	{ "duration", required_argument, NULL, OPT_DURATION },
	{ "strict", no_argument, NULL, OPT_STRICT },
	{ "exit-probe", required_argument, NULL, OPT_EXIT_PROBE },
	{ "no-multi", no_argument, NULL, OPT_NO_MULTI },
	{ "attach-mode", required_argument, NULL, OPT_ATTACH_MODE },
	{ "micromegas", required_argument, NULL, OPT_MICROMEGAS },
	{ "otlp", required_argument, NULL, OPT_OTLP },
	{ "otlp-gzip", no_argument, NULL, OPT_OTLP_GZIP },
	{ "perfetto", required_argument, NULL, OPT_PERFETTO },
	{ "ring-buffer", required_argument, NULL, OPT_RING },
	{ "stats", no_argument, NULL, OPT_STATS },
	{ "prune-advice", no_argument, NULL, OPT_PRUNE },
	{ "debuginfo", required_argument, NULL, OPT_DEBUGINFO },
	{ "expand", no_argument, NULL, OPT_EXPAND },
	{ "verbose", no_argument, NULL, 'v' },
	{ "exe", required_argument, NULL, OPT_EXE },
	{ "follow", no_argument, NULL, OPT_FOLLOW },
	{ "max-processes", required_argument, NULL, OPT_MAX_PROCS },
	{ "redact", no_argument, NULL, OPT_REDACT },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* Each command's own usage line: `run` takes no -p. */
static void usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "run"))
		fputs("usage: spanprobe attach -p PID [--follow] -s SYMBOLS [options]\n"
		      "       spanprobe attach --exe FILE [--exe FILE...] -s SYMBOLS [options]\n"
		      "options:\n"
		      "  -p, --pid PID         the process to trace\n"
		      "  --follow              with -p: also the processes PID forks\n"
		      "  --exe FILE            trace every process that maps FILE (an executable\n"
		      "                        or a library), running now or started later\n"
		      "  --max-processes N     trace at most N processes at once; more are\n"
		      "                        counted and skipped (default 1024)\n", f);
	else
		fputs("usage: spanprobe run -s SYMBOLS [options] -- CMD [ARGS...]\n"
		      "options:\n", f);
	fputs("  -s, --symbols FILE    the symbol list: 'root PATTERN' / 'span PATTERN' lines\n"
	      "  -o, --output FILE     write kept queries as blocks (default: trees on stdout)\n"
	      "  --min-span D          keep spans of at least D inside kept queries (5ms)\n"
	      "  --min-query D         keep queries whose root lasts at least D (1s)\n"
	      "  --duration D          stop after D\n"
	      "  --strict              a pattern that matches nothing is an error\n"
	      "  --exit-probe MODE     auto | guard | uretprobe | retsites (see README)\n"
	      "  --attach-mode MODE    session | multi | classic: the best kernel\n"
	      "                        mechanism to try first (default session)\n"
	      "  --no-multi            same as --attach-mode classic\n"
	      "  --micromegas URL      also send kept queries to a micromegas ingestion\n"
	      "                        server (token: $MICROMEGAS_INGESTION_API_KEY)\n"
	      "  --otlp URL            also send them as OTLP/HTTP JSON traces\n"
	      "                        (headers: $OTEL_EXPORTER_OTLP_HEADERS)\n"
	      "  --otlp-gzip           gzip the OTLP requests\n"
	      "  --perfetto FILE       also write them as a Perfetto/Chrome trace JSON file\n"
	      "  --stats               per-function figures at exit (stderr)\n"
	      "  --prune-advice        at exit, the symbol list without the functions\n"
	      "                        that never had a span kept in a slow query (stdout)\n"
	      "  --redact              captured strings lose their literal values\n"
	      "                        (SQL numbers and quoted strings become ?)\n"
	      "  --ring-buffer SIZE    kernel-to-collector buffer, a power of two >= 4K\n"
	      "                        (K or M suffix; default 8M)\n"
	      "  --debuginfo PATH      a separate debug file, or a directory of them\n"
	      "                        (build-id tree or .gnu_debuglink names), searched\n"
	      "                        before /usr/lib/debug and debuginfod; repeatable\n"
	      "  --expand              trees with every span (by default a run of same-name\n"
	      "                        siblings is one line: count, total, p50, max)\n"
	      "  -v, --verbose         name every object without symbols as it is read\n"
	      "  -h, --help            this text\n"
	      "durations take ns, us, ms or s suffixes\n", f);
}

static int parse_dur(const char *name, const char *v, uint64_t *out)
{
	if (sp_parse_duration(v, out) == 0)
		return 0;
	fprintf(stderr, "spanprobe: --%s: invalid duration '%s' (use e.g. 5ms, 1s, 250us)\n", name, v);
	return -1;
}

static int parse_exit_probe(const char *v, enum sp_exit_policy *p)
{
	if (!strcmp(v, "auto"))
		*p = SP_EXIT_AUTO;
	else if (!strcmp(v, "uretprobe"))
		*p = SP_EXIT_FORCE_URETPROBE;
	else if (!strcmp(v, "retsites"))
		*p = SP_EXIT_FORCE_RETSITES;
	else if (!strcmp(v, "guard"))
		*p = SP_EXIT_FORCE_GUARD;
	else {
		fprintf(stderr, "spanprobe: --exit-probe: expected auto, guard, uretprobe or retsites, got '%s'\n", v);
		return -1;
	}
	return 0;
}

static int parse_attach_mode(const char *v, enum sp_attach_mode *m)
{
	static const char *names[] = { "session", "multi", "classic" };

	for (int i = 0; i <= SP_ATTACH_CLASSIC; i++) {
		if (!strcmp(v, names[i])) {
			*m = (enum sp_attach_mode)i;
			return 0;
		}
	}
	fprintf(stderr, "spanprobe: --attach-mode: expected session, multi or classic, got '%s'\n", v);
	return -1;
}

/* The kernel wants a power-of-two multiple of the page size. */
static int parse_ring(const char *v, uint32_t *bytes)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 10);
	if (*end == 'K' || *end == 'k')
		n <<= 10, end++;
	else if (*end == 'M' || *end == 'm')
		n <<= 20, end++;
	if (errno || *end || end == v || n < 4096 || n > (1ull << 30) || (n & (n - 1))) {
		fprintf(stderr, "spanprobe: --ring-buffer: expected a power of two from 4K to 1024M, got '%s'\n", v);
		return -1;
	}
	*bytes = (uint32_t)n;
	return 0;
}

static const char *exes[MAX_EXES];

static int parse_count(const char *name, const char *v, size_t *out)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || *end || end == v || !n || n > 1000000) {
		fprintf(stderr, "spanprobe: --%s: expected a number from 1 to 1000000, got '%s'\n",
			name, v);
		return -1;
	}
	*out = n;
	return 0;
}

static int add_exe(struct sp_trace_opts *o, const char *v)
{
	if (access(v, R_OK)) {
		fprintf(stderr, "spanprobe: --exe %s: %s\n", v, strerror(errno));
		return -1;
	}
	if (o->n_exes == MAX_EXES) {
		fprintf(stderr, "spanprobe: --exe: at most %d files\n", MAX_EXES);
		return -1;
	}
	exes[o->n_exes++] = v;
	o->exes = exes;
	return 0;
}

static int parse_one(int c, struct sp_trace_opts *o, pid_t *pid, const char *cmd)
{
	char *end;

	switch (c) {
	case OPT_EXE: return add_exe(o, optarg);
	case OPT_FOLLOW: o->follow = true; return 0;
	case OPT_MAX_PROCS: return parse_count("max-processes", optarg, &o->max_procs);
	case 'p':
		errno = 0;
		*pid = (pid_t)strtol(optarg, &end, 10);
		if (errno || *end || *pid <= 0) {
			fprintf(stderr, "spanprobe: -p: invalid pid '%s'\n", optarg);
			return -1;
		}
		return 0;
	case 's': o->symbols = optarg; return 0;
	case 'o': o->output = optarg; return 0;
	case OPT_MIN_SPAN: return parse_dur("min-span", optarg, &o->min_span_ns);
	case OPT_MIN_QUERY: return parse_dur("min-query", optarg, &o->min_query_ns);
	case OPT_DURATION: return parse_dur("duration", optarg, &o->duration_ns);
	case OPT_STRICT: o->strict = true; return 0;
	case OPT_NO_MULTI: o->attach_mode = SP_ATTACH_CLASSIC; return 0;
	case OPT_ATTACH_MODE: return parse_attach_mode(optarg, &o->attach_mode);
	case OPT_RING: return parse_ring(optarg, &o->ring_bytes);
	case OPT_STATS: o->stats = true; return 0;
	case OPT_PRUNE: o->prune_advice = true; return 0;
	case OPT_DEBUGINFO: return sp_cli_debuginfo_add(optarg);
	case OPT_EXPAND: o->expand = true; return 0;
	case 'v': o->verbose = true; return 0;
	case OPT_REDACT: o->redact = true; return 0;
	case OPT_MICROMEGAS: o->exports.micromegas_url = optarg; return 0;
	case OPT_OTLP: o->exports.otlp_url = optarg; return 0;
	case OPT_OTLP_GZIP: o->exports.otlp_gzip = true; return 0;
	case OPT_PERFETTO: o->exports.perfetto_path = optarg; return 0;
	case OPT_EXIT_PROBE: return parse_exit_probe(optarg, &o->exit_policy);
	case 'h': usage(stdout, cmd); exit(0);
	default: usage(stderr, cmd); return -1;
	}
}

static int parse(int argc, char **argv, struct sp_trace_opts *o, pid_t *pid)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->min_span_ns = 5000000ull;
	o->min_query_ns = 1000000000ull;
	o->max_procs = 1024;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+p:s:o:vh", trace_options, NULL)) != -1)
		if (parse_one(c, o, pid, argv[0]))
			return -1;
	if (!o->symbols) {
		fprintf(stderr, "spanprobe: %s: -s SYMBOLS is required\n", argv[0]);
		return -1;
	}
	return sp_cli_debuginfo_apply();
}

static int preflight(void)
{
	char err[256];

	if (sp_check_caps(err, sizeof(err)) == 0)
		return 0;
	fprintf(stderr, "spanprobe: %s\n", err);
	return -1;
}

int sp_cmd_attach(int argc, char **argv)
{
	struct sp_trace_opts o;
	struct sp_session *s;
	pid_t pid = 0;

	if (parse(argc, argv, &o, &pid))
		return 2;
	if ((!pid == !o.n_exes) || optind != argc || (o.follow && !pid)) {
		fprintf(stderr, "spanprobe: attach: expected -p PID [--follow] or --exe FILE..., "
			"and no other arguments\n");
		return 2;
	}
	if (preflight())
		return 1;
	sp_install_stop_handlers();
	s = sp_session_start(pid, NULL, &o);
	if (!s)
		return 1;
	sp_session_loop(s, false, NULL);
	return sp_session_finish(s) ? 1 : 0;
}

/* execvp's own search, done up front because the probes go on the file
 * before the child execs it. */
static char *find_program(const char *cmd)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (strchr(cmd, '/'))
		return realpath(cmd, NULL);
	for (const char *p = path ? path : "/usr/bin:/bin"; p && *p;) {
		const char *colon = strchr(p, ':');
		size_t len = colon ? (size_t)(colon - p) : strlen(p);

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, len ? p : ".", cmd);
		if (access(buf, X_OK) == 0)
			return realpath(buf, NULL);
		p = colon ? colon + 1 : NULL;
	}
	return NULL;
}

/* The child waits on `go` before exec, so the probes are in place before
 * the program's first instruction. */
static pid_t spawn_paused(char **cmd, int *go_fd)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		char c;

		close(fds[1]);
		if (read(fds[0], &c, 1) != 1)
			_exit(127);
		/* the command gets no capability it did not have: ambient ones
		 * granted to spanprobe for tracing would survive the exec */
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
		execvp(cmd[0], cmd);
		fprintf(stderr, "spanprobe: %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(fds[0]);
	*go_fd = fds[1];
	return pid;
}

static int child_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 1;
}

static int abandon_child(pid_t pid, int go_fd)
{
	close(go_fd);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return 1;
}

int sp_cmd_run(int argc, char **argv)
{
	struct sp_trace_opts o;
	struct sp_session *s;
	char *exe;
	pid_t pid = 0;
	int go_fd, status = 0, rc, reaped;

	if (parse(argc, argv, &o, &pid))
		return 2;
	if (pid || optind >= argc || o.n_exes || o.follow) {
		fprintf(stderr, "spanprobe: run: expected -- CMD [ARGS...] and no -p, --exe or --follow\n");
		return 2;
	}
	if (preflight())
		return 1;
	exe = find_program(argv[optind]);
	if (!exe) {
		fprintf(stderr, "spanprobe: %s: command not found\n", argv[optind]);
		return 127;
	}
	sp_install_stop_handlers();
	pid = spawn_paused(&argv[optind], &go_fd);
	if (pid < 0) {
		fprintf(stderr, "spanprobe: fork: %s\n", strerror(errno));
		free(exe);
		return 1;
	}
	s = sp_session_start(pid, exe, &o);
	free(exe);
	if (!s)
		return abandon_child(pid, go_fd);
	if (write(go_fd, "g", 1) != 1)
		fprintf(stderr, "spanprobe: releasing the child: %s\n", strerror(errno));
	close(go_fd);
	reaped = sp_session_loop(s, true, &status);
	rc = sp_session_finish(s);
	/* tracing stopped early (--duration, exec): the command runs on, and
	 * run still exits with its status */
	if (!reaped && waitpid(pid, &status, 0) != pid)
		status = 0;
	return rc ? 1 : child_exit_code(status);
}
