#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/clock.h"
#include "sinks/send_queue.h"

struct node {
	struct node *next;
	struct sp_send_request r;
};

struct sp_send_queue {
	struct sp_send_conf conf;
	struct curl_slist *headers; /* conf->headers, copied */
	CURL *curl;                 /* used by the sender thread only */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;          /* new work, or closing */
	struct node *head, *tail;
	size_t count, bytes;
	bool in_flight;
	bool closing;
	uint64_t deadline;          /* monotonic ns, once closing */
	struct sp_send_stats st;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe: done once, from the first queue. */
static void init_curl(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_node(struct node *n)
{
	free(n->r.body);
	free(n);
}

/* ---- the sender thread -------------------------------------------------- */

static bool past_deadline(struct sp_send_queue *q)
{
	bool past;

	pthread_mutex_lock(&q->mu);
	past = q->closing && sp_now_mono() >= q->deadline;
	pthread_mutex_unlock(&q->mu);
	return past;
}

/* Cuts a transfer in progress once the exit deadline has passed. */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	(void)dt, (void)dn, (void)ut, (void)un;
	return past_deadline(arg) ? 1 : 0;
}

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
	(void)p, (void)arg;
	return size * n;
}

static void set_error(struct sp_send_queue *q, const char *what, const char *text)
{
	pthread_mutex_lock(&q->mu);
	snprintf(q->st.last_error, sizeof(q->st.last_error), "%s: %s", what, text);
	pthread_mutex_unlock(&q->mu);
}

static struct curl_slist *request_headers(const struct sp_send_queue *q,
					  const struct sp_send_request *r)
{
	struct curl_slist *h = NULL;
	char line[128];

	for (const struct curl_slist *c = q->headers; c; c = c->next)
		h = curl_slist_append(h, c->data);
	snprintf(line, sizeof(line), "Content-Type: %s", r->content_type);
	h = curl_slist_append(h, line);
	if (r->encoding) {
		snprintf(line, sizeof(line), "Content-Encoding: %s", r->encoding);
		h = curl_slist_append(h, line);
	}
	/* no 100-continue round trip on large bodies */
	return curl_slist_append(h, "Expect:");
}

/* One attempt: the HTTP status, or 0 when no answer came (the error is
 * recorded). */
static long post(struct sp_send_queue *q, const struct sp_send_request *r)
{
	struct curl_slist *h = request_headers(q, r);
	CURL *c = q->curl;
	CURLcode rc;
	long status = 0;

	curl_easy_setopt(c, CURLOPT_URL, r->url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	rc = curl_easy_perform(c);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(h);
	if (rc == CURLE_ABORTED_BY_CALLBACK) /* on_progress: the exit deadline */
		set_error(q, r->what, "cut at the exit deadline");
	else if (rc != CURLE_OK)
		set_error(q, r->what, curl_easy_strerror(rc));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	return status;
}

/* Sleeps before a retry; false if the exit deadline came first. */
static bool backoff(struct sp_send_queue *q, unsigned ms)
{
	uint64_t until = sp_now_mono() + (uint64_t)ms * 1000000u;
	bool ok;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		uint64_t now = sp_now_mono(), end = until;
		struct timespec ts;

		if (q->closing && q->deadline < end)
			end = q->deadline;
		if (now >= end)
			break;
		ts.tv_sec = (time_t)(end / 1000000000u);
		ts.tv_nsec = (long)(end % 1000000000u);
		pthread_cond_timedwait(&q->cv, &q->mu, &ts);
	}
	ok = !(q->closing && sp_now_mono() >= q->deadline);
	pthread_mutex_unlock(&q->mu);
	return ok;
}

static bool retryable(const struct sp_send_queue *q, long status)
{
	return status == 0 || status >= 500 || (status == 429 && q->conf.retry_429);
}

enum outcome { SENT, REJECTED, GAVE_UP, ABANDONED };

static enum outcome attempts(struct sp_send_queue *q, const struct sp_send_request *r)
{
	unsigned delay = q->conf.backoff_ms;

	for (unsigned attempt = 0;; attempt++) {
		long status;

		if (past_deadline(q))
			return ABANDONED;
		status = post(q, r);
		if (status >= 200 && status < 300)
			return SENT;
		if (status) {
			char text[32];

			snprintf(text, sizeof(text), "HTTP %ld", status);
			set_error(q, r->what, text);
		}
		if (!retryable(q, status))
			return REJECTED;
		if (attempt >= r->max_retries)
			return GAVE_UP;
		if (!backoff(q, delay))
			return ABANDONED;
		pthread_mutex_lock(&q->mu);
		q->st.retried++;
		pthread_mutex_unlock(&q->mu);
		delay = delay * 2 < q->conf.max_backoff_ms ? delay * 2 : q->conf.max_backoff_ms;
	}
}

static void deliver(struct sp_send_queue *q, const struct sp_send_request *r)
{
	enum outcome o = attempts(q, r);

	pthread_mutex_lock(&q->mu);
	switch (o) {
	case SENT: q->st.sent++; break;
	case REJECTED: q->st.rejected++; break;
	case GAVE_UP: q->st.gave_up++; break;
	case ABANDONED: q->st.abandoned++; break;
	}
	if (o != SENT)
		q->st.dropped++;
	pthread_mutex_unlock(&q->mu);
	if (r->done)
		r->done(r->done_arg, o == SENT);
}

static void *sender(void *arg)
{
	struct sp_send_queue *q = arg;

	for (;;) {
		struct node *n;

		pthread_mutex_lock(&q->mu);
		while (!q->head && !q->closing)
			pthread_cond_wait(&q->cv, &q->mu);
		n = q->head;
		if (!n) {
			pthread_mutex_unlock(&q->mu);
			return NULL;
		}
		q->head = n->next;
		if (!q->head)
			q->tail = NULL;
		q->count--;
		q->bytes -= n->r.len;
		q->in_flight = true;
		pthread_mutex_unlock(&q->mu);
		deliver(q, &n->r);
		pthread_mutex_lock(&q->mu);
		q->in_flight = false;
		pthread_mutex_unlock(&q->mu);
		free_node(n);
	}
}

/* ---- the event loop's side ---------------------------------------------- */

static CURL *make_curl(struct sp_send_queue *q)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* we run in a thread */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)q->conf.timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)q->conf.timeout_ms);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, q);
	return c;
}

static int init_sync(struct sp_send_queue *q)
{
	pthread_condattr_t ca;
	int rc;

	/* the backoff waits on the monotonic clock, like the deadline */
	if (pthread_condattr_init(&ca))
		return -1;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&q->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (rc)
		return -1;
	if (pthread_mutex_init(&q->mu, NULL)) {
		pthread_cond_destroy(&q->cv);
		return -1;
	}
	return 0;
}

struct sp_send_queue *sp_send_queue_new(const struct sp_send_conf *conf,
					char *err, size_t errlen)
{
	struct sp_send_queue *q;

	pthread_once(&curl_once, init_curl);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(curl_init_rc));
		return NULL;
	}
	q = calloc(1, sizeof(*q));
	if (!q || init_sync(q)) {
		snprintf(err, errlen, "send queue: %s", strerror(ENOMEM));
		free(q);
		return NULL;
	}
	q->conf = *conf;
	q->conf.headers = NULL;
	for (size_t i = 0; i < conf->n_headers; i++)
		q->headers = curl_slist_append(q->headers, conf->headers[i]);
	q->curl = make_curl(q);
	if (!q->curl || pthread_create(&q->thread, NULL, sender, q)) {
		snprintf(err, errlen, "send queue: cannot start the sender thread");
		curl_easy_cleanup(q->curl);
		curl_slist_free_all(q->headers);
		pthread_cond_destroy(&q->cv);
		pthread_mutex_destroy(&q->mu);
		free(q);
		return NULL;
	}
	return q;
}

bool sp_send_enqueue(struct sp_send_queue *q, const struct sp_send_request *r)
{
	struct node *n = malloc(sizeof(*n));
	bool ok;

	pthread_mutex_lock(&q->mu);
	ok = n && !q->closing && q->count < q->conf.max_items &&
	     r->len <= q->conf.max_bytes - q->bytes;
	if (ok) {
		n->next = NULL;
		n->r = *r;
		if (q->tail)
			q->tail->next = n;
		else
			q->head = n;
		q->tail = n;
		q->count++;
		q->bytes += r->len;
		pthread_cond_signal(&q->cv);
	} else {
		q->st.dropped_full++;
		q->st.dropped++;
	}
	pthread_mutex_unlock(&q->mu);
	if (!ok) {
		free(n);
		free(r->body);
	}
	return ok;
}

void sp_send_queue_stats(struct sp_send_queue *q, struct sp_send_stats *out)
{
	pthread_mutex_lock(&q->mu);
	*out = q->st;
	out->pending = q->count + (q->in_flight ? 1 : 0);
	pthread_mutex_unlock(&q->mu);
}

bool sp_send_url_ok(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok;

	ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	     (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && *host;
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

void sp_send_queue_drain(struct sp_send_queue *q, unsigned drain_ms)
{
	uint64_t deadline = sp_now_mono() + (uint64_t)drain_ms * 1000000u;

	pthread_mutex_lock(&q->mu);
	if (!q->closing || deadline < q->deadline)
		q->deadline = deadline;
	q->closing = true;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
}

void sp_send_queue_close(struct sp_send_queue *q, unsigned drain_ms, struct sp_send_stats *final)
{
	if (!q)
		return;
	sp_send_queue_drain(q, drain_ms);
	pthread_join(q->thread, NULL);
	if (final)
		sp_send_queue_stats(q, final);
	curl_easy_cleanup(q->curl);
	curl_slist_free_all(q->headers);
	pthread_cond_destroy(&q->cv);
	pthread_mutex_destroy(&q->mu);
	free(q);
}
