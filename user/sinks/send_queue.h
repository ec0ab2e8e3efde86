/*
 * A bounded queue of HTTP POSTs and the thread that sends them, one per
 * remote sink, so that a receiver that is down, slow or failing costs
 * the event loop nothing: enqueueing never blocks, a full queue drops the
 * request (and counts it), and only the sender thread waits on the
 * network.
 *
 * Requests go out one at a time in queue order (micromegas needs its
 * process and stream records before the blocks). Network errors and 5xx
 * answers are retried with the same body after an exponential backoff;
 * 4xx answers never are (429 only when asked).
 */
#ifndef SPANPROBE_SEND_QUEUE_H
#define SPANPROBE_SEND_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_send_conf {
	size_t max_items;            /* queued requests, in flight excluded */
	size_t max_bytes;            /* their bodies, in total */
	const char *const *headers;  /* extra "Name: value" lines, copied */
	size_t n_headers;
	unsigned timeout_ms;         /* one attempt, connection included */
	unsigned backoff_ms;         /* first retry delay, doubled each time */
	unsigned max_backoff_ms;
	bool retry_429;              /* OTLP says 429 means "later" */
};

struct sp_send_request {
	const char *url;          /* must outlive the queue */
	const char *what;         /* a label for error messages */
	const char *content_type;
	const char *encoding;     /* Content-Encoding of body, or NULL */
	void *body;               /* malloc'd; owned by the queue once passed */
	size_t len;
	unsigned max_retries;
	/* Called from the sender thread once the request is settled (not when
	 * enqueueing fails: that is the return value). May be NULL. */
	void (*done)(void *arg, bool delivered);
	void *done_arg;
};

struct sp_send_stats {
	uint64_t sent;          /* answered 2xx */
	uint64_t retried;       /* attempts after the first */
	uint64_t dropped;       /* not delivered: the sum of the next four */
	uint64_t dropped_full;  /* the queue was full */
	uint64_t rejected;      /* a 4xx (or other non-retryable) answer */
	uint64_t gave_up;       /* still failing after max_retries */
	uint64_t abandoned;     /* unsent when the exit deadline passed */
	size_t pending;         /* queued or in flight now */
	char last_error[160];   /* "insert_block: HTTP 503", "" if none */
};

struct sp_send_queue;

struct sp_send_queue *sp_send_queue_new(const struct sp_send_conf *conf,
					char *err, size_t errlen);
/* Takes ownership of r->body whatever happens. false: dropped (full). */
bool sp_send_enqueue(struct sp_send_queue *q, const struct sp_send_request *r);
void sp_send_queue_stats(struct sp_send_queue *q, struct sp_send_stats *out);
/* An absolute http:// or https:// URL with a host: what a sink accepts
 * on the command line (libcurl would otherwise guess a scheme). */
bool sp_send_url_ok(const char *url);
/* Stops taking requests and starts the exit deadline, drain_ms from now,
 * without waiting: several queues can then drain at the same time. */
void sp_send_queue_drain(struct sp_send_queue *q, unsigned drain_ms);
/* Waits until what is queued has gone out or the deadline (drain_ms from
 * now, or an earlier one from sp_send_queue_drain) has passed, abandons
 * the rest (an attempt in progress is cut), stores the final counters in
 * *final (if not NULL) and frees the queue. */
void sp_send_queue_close(struct sp_send_queue *q, unsigned drain_ms, struct sp_send_stats *final);

#endif
