#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>
#include <zlib.h>
#include "sinks/otlp_json.h"
#include "sinks/sink_otlp.h"

#define OTLP_PATH "/v1/traces"
#define OTLP_RETRIES 5

struct sp_otlp_sink {
	struct sp_send_queue *q;
	char *url;
	bool gzip;
	uint8_t session[8];        /* first half of every trace id */
	struct sp_otlp_resource res;
	char *exe;
	char host[256];
	uint64_t encode_errors;    /* out of memory: counted as dropped */
};

/* ---- headers from the environment ---------------------------------------- */

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : isxdigit(c) ? tolower(c) - 'a' + 10 : -1;
}

/* Trims and percent-decodes s[0..n) into a new string. */
static char *decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	while (n && isspace((unsigned char)*s))
		s++, n--;
	while (n && isspace((unsigned char)s[n - 1]))
		n--;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* "k=v" -> "k: v"; NULL if it is not a usable header. */
static char *header_line(const char *entry, size_t len)
{
	const char *eq = memchr(entry, '=', len);
	char *k, *v, *line = NULL;

	if (!eq)
		return NULL;
	k = decode(entry, (size_t)(eq - entry));
	v = decode(eq + 1, len - (size_t)(eq - entry) - 1);
	/* CR/LF would let a value add headers of its own */
	if (k && v && *k && !strpbrk(k, "\r\n: ") && !strpbrk(v, "\r\n") &&
	    asprintf(&line, "%s: %s", k, v) < 0)
		line = NULL;
	free(k);
	free(v);
	return line;
}

static void free_lines(char **lines, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(lines[i]);
	free(lines);
}

int sp_otlp_parse_headers(const char *env, char ***lines, size_t *n, char *err, size_t errlen)
{
	*lines = NULL;
	*n = 0;
	for (const char *p = env; p && *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char **grown, *line;

		if (len) {
			line = header_line(p, len);
			grown = line ? realloc(*lines, (*n + 1) * sizeof(**lines)) : NULL;
			if (!grown) {
				/* the value may be a secret: name the entry's position only */
				snprintf(err, errlen, "OTLP headers: entry %zu is not key=value", *n + 1);
				free(line);
				free_lines(*lines, *n);
				*lines = NULL;
				*n = 0;
				return -1;
			}
			*lines = grown;
			(*lines)[(*n)++] = line;
		}
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

/* ---- the sink -------------------------------------------------------------- */

static char *traces_url(const char *url)
{
	size_t len = strlen(url), plen = strlen(OTLP_PATH);
	char *out;

	if (len >= plen && !strcmp(url + len - plen, OTLP_PATH))
		return strdup(url);
	while (len && url[len - 1] == '/')
		len--;
	return asprintf(&out, "%.*s%s", (int)len, url, OTLP_PATH) < 0 ? NULL : out;
}

static struct sp_send_queue *make_queue(char *err, size_t errlen)
{
	const char *env = getenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
	struct sp_send_conf conf = {
		.max_items = 256, .max_bytes = 32u << 20, .timeout_ms = 10000,
		.backoff_ms = 10, .max_backoff_ms = 1000, .retry_429 = true,
	};
	struct sp_send_queue *q;
	char **lines;
	size_t n;

	if (!env)
		env = getenv("OTEL_EXPORTER_OTLP_HEADERS");
	if (sp_otlp_parse_headers(env, &lines, &n, err, errlen))
		return NULL;
	conf.headers = (const char *const *)lines;
	conf.n_headers = n;
	q = sp_send_queue_new(&conf, err, errlen);
	free_lines(lines, n);
	return q;
}

static void identify(struct sp_otlp_sink *s, const struct sp_block_header *meta)
{
	const char *base;

	s->exe = strdup(meta->exe ? meta->exe : "");
	base = s->exe ? strrchr(s->exe, '/') : NULL;
	if (gethostname(s->host, sizeof(s->host) - 1))
		strcpy(s->host, "unknown");
	s->res = (struct sp_otlp_resource){
		.service_name = base ? base + 1 : s->exe ? s->exe : "",
		.host_name = s->host, .exe = s->exe ? s->exe : "",
		.pid = meta->pid, .proc_start_ns = meta->proc_start_ns,
	};
}

struct sp_otlp_sink *sp_otlp_open(const char *url, bool gzip, const struct sp_block_header *meta,
				  char *err, size_t errlen)
{
	struct sp_otlp_sink *s;

	if (!sp_send_url_ok(url)) {
		snprintf(err, errlen, "--otlp: '%s' is not an http:// or https:// URL", url);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s || !(s->url = traces_url(url)) ||
	    getrandom(s->session, sizeof(s->session), 0) != (ssize_t)sizeof(s->session)) {
		snprintf(err, errlen, "--otlp: out of memory or randomness");
		goto fail;
	}
	s->gzip = gzip;
	identify(s, meta);
	s->q = make_queue(err, errlen);
	if (s->q)
		return s;
fail:
	if (s) {
		free(s->url);
		free(s->exe);
	}
	free(s);
	return NULL;
}

/* gzip (RFC 1952) of buf; NULL on failure. */
static void *gzip_buf(const void *buf, size_t len, size_t *out_len)
{
	z_stream z;
	void *out = NULL;

	if (len > UINT32_MAX) /* zlib counts in 32 bits */
		return NULL;
	memset(&z, 0, sizeof(z));
	/* 15 + 16: the largest window, with a gzip header and trailer */
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return NULL;
	*out_len = deflateBound(&z, len);
	out = malloc(*out_len);
	z.next_in = (Bytef *)buf;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)*out_len;
	if (!out || deflate(&z, Z_FINISH) != Z_STREAM_END) {
		free(out);
		out = NULL;
	} else {
		*out_len = z.total_out;
	}
	deflateEnd(&z);
	return out;
}

static char *encode(struct sp_otlp_sink *s, const struct sp_span *spans, size_t n, size_t *len)
{
	uint8_t trace_id[16];
	char *json = NULL;
	FILE *f = open_memstream(&json, len);

	if (!f)
		return NULL;
	/* query ids are per process: the pid keeps traces of two processes
	 * apart (0 for a process that is not named) */
	sp_otlp_trace_id(trace_id, s->session, spans[0].query_id ^ (uint64_t)s->res.pid << 32);
	sp_otlp_write_json(f, &s->res, trace_id, spans, n);
	if (ferror(f) | fclose(f)) {
		free(json);
		return NULL;
	}
	return json;
}

void sp_otlp_query(struct sp_otlp_sink *s, const struct sp_block_header *meta,
		   const struct sp_span *spans, size_t n)
{
	struct sp_send_request r = {
		.url = s->url, .what = "traces", .content_type = "application/json",
		.max_retries = OTLP_RETRIES,
	};
	size_t len = 0;
	char *json;

	/* the resource is the process the query ran in */
	s->res.pid = meta->pid;
	s->res.proc_start_ns = meta->proc_start_ns;
	json = n ? encode(s, spans, n, &len) : NULL;

	if (json && s->gzip) {
		void *gz = gzip_buf(json, len, &len);

		free(json);
		json = gz;
		r.encoding = "gzip";
	}
	if (!json) {
		s->encode_errors++;
		return;
	}
	r.body = json;
	r.len = len;
	sp_send_enqueue(s->q, &r);
}

void sp_otlp_stats(struct sp_otlp_sink *s, struct sp_send_stats *st)
{
	sp_send_queue_stats(s->q, st);
	/* a trace that could not be encoded is lost like a dropped one */
	st->dropped += s->encode_errors;
}

void sp_otlp_drain(struct sp_otlp_sink *s, unsigned drain_ms)
{
	sp_send_queue_drain(s->q, drain_ms);
}

void sp_otlp_close(struct sp_otlp_sink *s, unsigned drain_ms, struct sp_send_stats *final)
{
	if (!s)
		return;
	sp_send_queue_close(s->q, drain_ms, final);
	if (final)
		final->dropped += s->encode_errors;
	free(s->url);
	free(s->exe);
	free(s);
}
