/*
 * The bounded send queue against a real HTTP server on 127.0.0.1 (a small
 * one in this file, scripted to answer 2xx, 4xx, 5xx, to hang, or to be
 * absent): delivery, retries with the same body, no retry of 4xx, the
 * give-up count, drops when full, and the exit deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sinks/send_queue.h"

#define MAX_REQ 64

struct server {
	int lfd;
	char url[64];
	pthread_t th;
	pthread_mutex_t mu;
	int script[16];       /* answers to the first requests; then 200 */
	size_t nscript;
	bool hang;            /* read requests, never answer */
	atomic_bool stop;
	size_t nreq;
	char *head[MAX_REQ];  /* request line and headers */
	char *body[MAX_REQ];
	size_t len[MAX_REQ];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads one request; false at end of connection or on stop. */
static bool read_request(struct server *s, int fd, char **head, char **body, size_t *len)
{
	size_t cap = 1 << 16, got = 0, want;
	char *buf = malloc(cap), *end = NULL, *cl;

	while (!end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (s->stop || got == cap - 1) {
			free(buf);
			return false;
		}
		if (poll(&p, 1, 50) <= 0)
			continue;
		r = read(fd, buf + got, cap - 1 - got);
		if (r <= 0) {
			free(buf);
			return false;
		}
		got += (size_t)r;
		buf[got] = 0;
		end = strstr(buf, "\r\n\r\n");
	}
	cl = strcasestr(buf, "Content-Length:");
	want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
	while (got < want) {
		ssize_t r = read(fd, buf + got, want - got);

		if (r <= 0) {
			free(buf);
			return false;
		}
		got += (size_t)r;
	}
	*len = got - (size_t)(end + 4 - buf);
	*body = malloc(*len + 1);
	memcpy(*body, end + 4, *len);
	*end = 0;
	*head = buf;
	return true;
}

static void serve_connection(struct server *s, int fd)
{
	char *head, *body, reply[128];
	size_t len;

	while (read_request(s, fd, &head, &body, &len)) {
		int status = 200;

		pthread_mutex_lock(&s->mu);
		if (s->nreq < MAX_REQ) {
			s->head[s->nreq] = head;
			s->body[s->nreq] = body;
			s->len[s->nreq] = len;
		}
		if (s->nreq < s->nscript)
			status = s->script[s->nreq];
		s->nreq++;
		pthread_mutex_unlock(&s->mu);
		while (s->hang && !s->stop)
			usleep(10000);
		if (s->hang)
			break;
		snprintf(reply, sizeof(reply), "HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n", status);
		if (write(fd, reply, strlen(reply)) < 0)
			break;
	}
	close(fd);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 50) <= 0)
			continue;
		fd = accept(s->lfd, NULL, NULL);
		if (fd >= 0)
			serve_connection(s, fd);
	}
	return NULL;
}

static int listen_loopback(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

static struct server *server_start(const int *script, size_t n, bool hang)
{
	struct server *s = calloc(1, sizeof(*s));
	uint16_t port;

	s->lfd = listen_loopback(&port);
	assert_int_equal(listen(s->lfd, 8), 0);
	snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%u/ingest", port);
	if (n) /* script may be NULL when empty */
		memcpy(s->script, script, n * sizeof(*script));
	s->nscript = n;
	s->hang = hang;
	pthread_mutex_init(&s->mu, NULL);
	assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
	return s;
}

static size_t server_requests(struct server *s)
{
	size_t n;

	pthread_mutex_lock(&s->mu);
	n = s->nreq;
	pthread_mutex_unlock(&s->mu);
	return n;
}

static void server_stop(struct server *s)
{
	s->stop = true;
	pthread_join(s->th, NULL);
	close(s->lfd);
	for (size_t i = 0; i < s->nreq && i < MAX_REQ; i++) {
		free(s->head[i]);
		free(s->body[i]);
	}
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static struct sp_send_conf conf(void)
{
	return (struct sp_send_conf){ .max_items = 16, .max_bytes = 1 << 20, .timeout_ms = 5000,
		.backoff_ms = 1, .max_backoff_ms = 4 };
}

static struct sp_send_queue *queue(const struct sp_send_conf *c)
{
	char err[128];
	struct sp_send_queue *q = sp_send_queue_new(c, err, sizeof(err));

	if (!q)
		fail_msg("%s", err);
	return q;
}

static bool post(struct sp_send_queue *q, const char *url, const char *body, unsigned retries,
		 void (*done)(void *, bool), void *arg)
{
	struct sp_send_request r = {
		.url = url, .what = "test", .content_type = "application/x-test",
		.body = strdup(body), .len = strlen(body), .max_retries = retries,
		.done = done, .done_arg = arg,
	};

	return sp_send_enqueue(q, &r);
}

static void record_done(void *arg, bool delivered)
{
	*(int *)arg = delivered ? 1 : -1;
}

static void test_delivers_in_order_with_headers(void **state)
{
	struct server *srv = server_start(NULL, 0, false);
	const char *hdr[] = { "Authorization: Bearer t0ken" };
	struct sp_send_conf c = conf();
	struct sp_send_request gz = { .what = "test", .content_type = "application/json",
				      .encoding = "gzip", .len = 2, .max_retries = 1 };
	struct sp_send_stats st;
	struct sp_send_queue *q;

	(void)state;
	c.headers = hdr;
	c.n_headers = 1;
	q = queue(&c);
	assert_true(post(q, srv->url, "first", 0, NULL, NULL));
	assert_true(post(q, srv->url, "second", 0, NULL, NULL));
	gz.url = srv->url;
	gz.body = strdup("gz");
	assert_true(sp_send_enqueue(q, &gz));
	sp_send_queue_close(q, 5000, &st);
	assert_int_equal(st.sent, 3);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(st.retried, 0);
	assert_int_equal(st.pending, 0);
	assert_int_equal(srv->nreq, 3);
	assert_memory_equal(srv->body[0], "first", 5);
	assert_memory_equal(srv->body[1], "second", 6);
	assert_memory_equal(srv->body[2], "gz", 2);
	assert_non_null(strstr(srv->head[0], "POST /ingest HTTP/1.1"));
	assert_non_null(strstr(srv->head[0], "\r\nAuthorization: Bearer t0ken"));
	assert_non_null(strstr(srv->head[0], "\r\nContent-Type: application/x-test"));
	assert_null(strcasestr(srv->head[0], "Content-Encoding"));
	assert_null(strcasestr(srv->head[0], "Expect:"));
	assert_non_null(strstr(srv->head[2], "\r\nContent-Encoding: gzip"));
	assert_non_null(strstr(srv->head[2], "\r\nContent-Type: application/json"));
	server_stop(srv);
}

static void test_retries_5xx_with_same_body(void **state)
{
	static const int script[] = { 503, 500, 502 };
	struct server *srv = server_start(script, 3, false);
	struct sp_send_conf c = conf();
	struct sp_send_queue *q = queue(&c);
	struct sp_send_stats st;
	int done = 0;

	(void)state;
	assert_true(post(q, srv->url, "block-0003", 5, record_done, &done));
	sp_send_queue_close(q, 5000, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.retried, 3);
	assert_int_equal(st.dropped, 0);
	assert_int_equal(done, 1);
	assert_string_equal(st.last_error, "test: HTTP 502");
	assert_int_equal(srv->nreq, 4);
	for (int i = 0; i < 4; i++)
		assert_memory_equal(srv->body[i], "block-0003", 10);
	server_stop(srv);
}

static void test_never_retries_4xx(void **state)
{
	static const int script[] = { 400, 401, 429 };
	struct server *srv = server_start(script, 3, false);
	struct sp_send_conf c = conf();
	struct sp_send_queue *q = queue(&c);
	struct sp_send_stats st;
	int done = 0;

	(void)state;
	assert_true(post(q, srv->url, "a", 5, record_done, &done));
	assert_true(post(q, srv->url, "b", 5, NULL, NULL));
	assert_true(post(q, srv->url, "c", 5, NULL, NULL)); /* 429: not retried here */
	sp_send_queue_close(q, 5000, &st);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.retried, 0);
	assert_int_equal(st.rejected, 3);
	assert_int_equal(st.dropped, 3);
	assert_int_equal(done, -1);
	assert_string_equal(st.last_error, "test: HTTP 429");
	assert_int_equal(srv->nreq, 3);
	server_stop(srv);
}

static void test_429_retried_when_asked(void **state)
{
	static const int script[] = { 429 };
	struct server *srv = server_start(script, 1, false);
	struct sp_send_conf c = conf();
	struct sp_send_queue *q;
	struct sp_send_stats st;

	(void)state;
	c.retry_429 = true;
	q = queue(&c);
	assert_true(post(q, srv->url, "x", 5, NULL, NULL));
	sp_send_queue_close(q, 5000, &st);
	assert_int_equal(st.sent, 1);
	assert_int_equal(st.retried, 1);
	assert_int_equal(srv->nreq, 2);
	server_stop(srv);
}

static void test_gives_up_when_down(void **state)
{
	uint16_t port;
	int fd = listen_loopback(&port); /* bound, never listening: refused */
	char url[64];
	struct sp_send_conf c = conf();
	struct sp_send_queue *q = queue(&c);
	struct sp_send_stats st;
	int done = 0;

	(void)state;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/x", port);
	assert_true(post(q, url, "x", 3, record_done, &done));
	sp_send_queue_close(q, 5000, &st);
	close(fd);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.retried, 3);
	assert_int_equal(st.gave_up, 1);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(done, -1);
	assert_non_null(strstr(st.last_error, "test: "));
	assert_null(strstr(st.last_error, "HTTP"));
}

/* A receiver that never answers: the queue fills, extra requests are
 * dropped at once (never blocking the caller), and the exit gives up at
 * its deadline, counting what was left. */
static void test_full_queue_and_exit_deadline(void **state)
{
	struct server *srv = server_start(NULL, 0, true);
	struct sp_send_conf c = conf();
	struct sp_send_queue *q;
	struct sp_send_stats st;
	double t0;
	int done = 0;

	(void)state;
	c.max_items = 2;
	q = queue(&c);
	assert_true(post(q, srv->url, "in-flight", 5, record_done, &done));
	for (int i = 0; i < 500 && server_requests(srv) < 1; i++)
		usleep(10000);
	assert_int_equal(server_requests(srv), 1);
	assert_true(post(q, srv->url, "queued-1", 5, NULL, NULL));
	assert_true(post(q, srv->url, "queued-2", 5, NULL, NULL));
	t0 = now_s();
	for (int i = 0; i < 1000; i++)
		assert_false(post(q, srv->url, "overflow", 5, NULL, NULL));
	/* no waiting on a full queue: a wait would last until the in-flight
	 * request timed out (5 s, the server hangs); the bound is that, not a
	 * speed, so that a loaded machine (valgrind, busy CPUs) passes */
	assert_true(now_s() - t0 < 4.5);
	sp_send_queue_stats(q, &st);
	assert_int_equal(st.dropped_full, 1000);
	assert_int_equal(st.pending, 3);
	t0 = now_s();
	sp_send_queue_close(q, 300, &st);
	/* the 300 ms deadline, plus libcurl's 1 s progress tick; ignoring it
	 * would wait for the requests' 5 s timeout */
	assert_true(now_s() - t0 < 4.5);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.abandoned, 3);
	assert_int_equal(st.dropped, 1003);
	assert_int_equal(done, -1);
	server_stop(srv);
}

static void test_byte_bound(void **state)
{
	struct server *srv = server_start(NULL, 0, false);
	struct sp_send_conf c = conf();
	struct sp_send_queue *q;
	struct sp_send_stats st;

	(void)state;
	c.max_bytes = 10;
	q = queue(&c);
	assert_false(post(q, srv->url, "eleven byte", 0, NULL, NULL));
	assert_true(post(q, srv->url, "ten bytes!", 0, NULL, NULL));
	sp_send_queue_close(q, 5000, &st);
	assert_int_equal(st.dropped_full, 1);
	assert_int_equal(st.sent, 1);
	server_stop(srv);
}

static void test_url_check(void **state)
{
	(void)state;
	assert_true(sp_send_url_ok("http://127.0.0.1:9000"));
	assert_true(sp_send_url_ok("https://ingest.example/v1/traces"));
	assert_false(sp_send_url_ok("127.0.0.1:9000"));
	assert_false(sp_send_url_ok("ftp://host/x"));
	assert_false(sp_send_url_ok("file:///etc/passwd"));
	assert_false(sp_send_url_ok(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delivers_in_order_with_headers),
		cmocka_unit_test(test_retries_5xx_with_same_body),
		cmocka_unit_test(test_never_retries_4xx),
		cmocka_unit_test(test_429_retried_when_asked),
		cmocka_unit_test(test_gives_up_when_down),
		cmocka_unit_test(test_full_queue_and_exit_deadline),
		cmocka_unit_test(test_byte_bound),
		cmocka_unit_test(test_url_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
