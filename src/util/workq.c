#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

/*
 * Jobs live in a ring of `depth` slots. The producer fills slots at `head`,
 * workers take them at `next` and mark them done, the consumer collects at
 * `tail`. One mutex and two condition variables: the ring is tiny and jobs
 * are large (a chunk of up to a few MiB), so contention does not matter.
 */
struct slot {
	void *job;
	bool done;
};

struct dv_workq {
	pthread_mutex_t mu;
	pthread_cond_t work;   /* a job was queued, or shutdown */
	pthread_cond_t done;   /* a job finished */
	struct slot *ring;
	unsigned depth, head, next, tail, count;
	bool stop;
	dv_work_fn fn;
	void *ctx;
	unsigned nthreads;
	pthread_t *threads;
};

static void *worker(void *arg)
{
	struct dv_workq *q = arg;
	pthread_mutex_lock(&q->mu);
	for (;;) {
		while (!q->stop && q->next == q->head)
			pthread_cond_wait(&q->work, &q->mu);
		if (q->next == q->head && q->stop)
			break;
		struct slot *s = &q->ring[q->next % q->depth];
		q->next++;
		pthread_mutex_unlock(&q->mu);
		q->fn(s->job, q->ctx);
		pthread_mutex_lock(&q->mu);
		s->done = true;
		pthread_cond_broadcast(&q->done);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

unsigned dv_cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

struct dv_workq *dv_workq_new(unsigned threads, unsigned depth, dv_work_fn fn, void *ctx)
{
	struct dv_workq *q = dv_calloc(1, sizeof *q);
	if (threads == 0)
		threads = 1;
	if (depth < threads)
		depth = threads;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->work, NULL);
	pthread_cond_init(&q->done, NULL);
	q->ring = dv_calloc(depth, sizeof *q->ring);
	q->depth = depth;
	q->fn = fn;
	q->ctx = ctx;
	q->nthreads = threads;
	q->threads = dv_calloc(threads, sizeof *q->threads);
	for (unsigned i = 0; i < threads; i++)
		if (pthread_create(&q->threads[i], NULL, worker, q) != 0)
			DV_BUG("cannot create worker thread");
	return q;
}

static void *collect_locked(struct dv_workq *q)
{
	struct slot *s = &q->ring[q->tail % q->depth];
	while (!s->done)
		pthread_cond_wait(&q->done, &q->mu);
	void *job = s->job;
	s->job = NULL;
	s->done = false;
	q->tail++;
	q->count--;
	return job;
}

void dv_workq_submit(struct dv_workq *q, void *job, void **done)
{
	pthread_mutex_lock(&q->mu);
	*done = NULL;
	if (q->count == q->depth)
		*done = collect_locked(q);
	struct slot *s = &q->ring[q->head % q->depth];
	s->job = job;
	s->done = false;
	q->head++;
	q->count++;
	pthread_cond_signal(&q->work);
	pthread_mutex_unlock(&q->mu);
}

void *dv_workq_collect(struct dv_workq *q)
{
	pthread_mutex_lock(&q->mu);
	void *job = q->count ? collect_locked(q) : NULL;
	pthread_mutex_unlock(&q->mu);
	return job;
}

unsigned dv_workq_outstanding(const struct dv_workq *q) { return q->count; }

void dv_workq_free(struct dv_workq *q)
{
	if (!q)
		return;
	pthread_mutex_lock(&q->mu);
	if (q->count)
		DV_BUG("work queue freed with %u jobs outstanding", q->count);
	q->stop = true;
	pthread_cond_broadcast(&q->work);
	pthread_mutex_unlock(&q->mu);
	for (unsigned i = 0; i < q->nthreads; i++)
		pthread_join(q->threads[i], NULL);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->work);
	pthread_cond_destroy(&q->done);
	free(q->ring);
	free(q->threads);
	free(q);
}
