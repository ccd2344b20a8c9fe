/* Cluster mode over ZooKeeper (see cluster.h).
 *
 * Concurrency design
 *   c->mu protects the table of cluster locks, each lock's state machine
 *   and znode name, the clock of last contact and the statistics. It is
 *   never held while calling into the ZooKeeper client (which may run a
 *   completion in the calling thread when it closes) nor while calling
 *   c->ops. Every change goes: step the lock's state machine under c->mu,
 *   unlock, carry out the actions it returned (act()).
 *
 *   Cluster locks are never freed before cluster_free(): they are the
 *   context of ZooKeeper watches and completions, which may still arrive
 *   for a lock long after the daemon stopped using it. One record per file
 *   this daemon ever asked for (about 300 bytes).
 *
 *   Requests carry a small record with their send time: an answer proves
 *   the session alive at that time, which is what the loss detector needs
 *   (the server measures its timeout from when it last heard from us, which
 *   is no earlier than that send time). */
#include "cluster.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#ifdef LOCKFS_HAVE_ZOOKEEPER
#include <pthread.h>
#include <time.h>
#include <unistd.h>
/* The multi-threaded client: its synchronous calls are declared only then. */
#define THREADED
#include <zookeeper/zookeeper.h>

#include "hashtab.h"
#include "list.h"

struct clock {
	struct hlink link;
	struct cluster *c;
	uint64_t key;
	char dir[CLUSTER_NAME_MAX + 300];    /* PATH/locks/<name> */
	/* Under c->mu: */
	struct cl_fsm fsm;
	char node[CLUSTER_NAME_MAX + 400];   /* our znode, "" if none */
	long long seq;
	int64_t token;
	unsigned waiters;
	bool dir_known;     /* the container exists, as far as we know */
	bool watching;      /* a children watch is armed */
	bool retry;         /* the watchdog asks again (after a failure) */
	bool creating;      /* our znode (or its container) is being created */
	/* For lockstat: the lowest znode of another daemon in the last
	 * listing (the holder while we wait, the next holder while we hold)
	 * and, once read, its data and czxid. Read once per new name. */
	char peer[64];      /* its name in dir, "" if none */
	long long peer_seq;
	char peer_ident[CLUSTER_IDENT_MAX];  /* "" until read */
	int64_t peer_token;
	bool peer_reading;  /* a read of its data is out */
};

struct cluster {
	struct cluster_config cfg;
	struct cluster_ops ops;
	void *arg;
	char ident[CLUSTER_IDENT_MAX];  /* "<host> <pid>": our znodes' data */

	pthread_mutex_t mu;         /* protects everything below */
	pthread_cond_t cv;
	zhandle_t *zh;
	char prefix[64];            /* "lock-<session id>-" */
	struct htab locks;          /* of struct clock, by key */
	uint64_t last_heard;        /* ns: send time of the latest answer */
	uint64_t suspect_since;     /* 0 = the session is trusted */
	bool connected, expired, stopping, ping_out;
	struct cluster_stats st;
	pthread_t watchdog;
	bool watchdog_started;
};

struct zreq {
	struct cluster *c;
	struct clock *cl;           /* NULL for pings */
	uint64_t sent;
	long long seq;              /* peer reads: the znode asked about */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t clock_hash(const struct hlink *l)
{
	return hash_mix64(list_entry(l, struct clock, link)->key);
}

/* Called with c->mu held. */
static struct clock *find(struct cluster *c, uint64_t key)
{
	for (struct hlink *l = ht_first(&c->locks, hash_mix64(key)); l; l = l->next) {
		struct clock *cl = list_entry(l, struct clock, link);

		if (cl->key == key)
			return cl;
	}
	return NULL;
}

/* Whether the server answered (the session was alive when rq was sent). */
static bool answered(int rc)
{
	return rc == ZOK || (rc <= ZAPIERROR && rc != ZSESSIONEXPIRED &&
			     rc != ZCLOSING && rc != ZSESSIONMOVED);
}

/* Records an answer to rq, frees rq. Returns false when the module is
 * closing (the caller must not go on). */
static bool heard(struct zreq *rq, int rc)
{
	struct cluster *c = rq->c;
	bool go;

	pthread_mutex_lock(&c->mu);
	if (answered(rc) && rq->sent > c->last_heard) {
		c->last_heard = rq->sent;
		/* Locks declared lost stay lost; new ones may be trusted
		 * again once the session has answered since. */
		if (c->suspect_since && rq->sent > c->suspect_since)
			c->suspect_since = 0;
	}
	if (rc == ZSESSIONEXPIRED) {
		c->expired = true;
		pthread_cond_broadcast(&c->cv);
	}
	go = !c->stopping;
	pthread_mutex_unlock(&c->mu);
	free(rq);
	return go && rc != ZCLOSING;
}

/* A request record for cl; NULL and the zhandle in *zh, under c->mu. */
static struct zreq *zreq_new(struct cluster *c, struct clock *cl, zhandle_t **zh)
{
	struct zreq *rq = malloc(sizeof(*rq));

	if (!rq)
		return NULL;
	rq->c = c;
	rq->cl = cl;
	rq->sent = now_ns();
	pthread_mutex_lock(&c->mu);
	*zh = c->zh;
	c->st.requests++;
	pthread_mutex_unlock(&c->mu);
	return rq;
}

static void act(struct clock *cl, unsigned actions);

/* Steps cl's state machine and carries out what it says. */
static void step(struct clock *cl, enum cl_event e)
{
	unsigned a;

	enum cl_state from;

	pthread_mutex_lock(&cl->c->mu);
	from = cl->fsm.st;
	a = cl_fsm_step(&cl->fsm, e);
	/* From now: a listing must not take us for a lost create. */
	if (a & CA_CREATE)
		cl->creating = true;
	log_debug("cluster: %s: %s -(%d)-> %s, actions %#x", cl->dir, cl_state_name(from), (int)e,
		  cl_state_name(cl->fsm.st), a);
	pthread_mutex_unlock(&cl->c->mu);
	act(cl, a);
}

/* A request could not be sent or failed on the way: the watchdog tries
 * again, so a lost connection never turns into a retry loop. */
static void later(struct clock *cl, enum cl_event e)
{
	pthread_mutex_lock(&cl->c->mu);
	cl->retry = true;
	pthread_mutex_unlock(&cl->c->mu);
	log_limited(LOG_LVL_WARN, "cluster: ZooKeeper did not take a request for %s; "
		    "opens that need it wait until it does (lock_timeout bounds them)", cl->dir);
	if (e == CE_FAILED)
		step(cl, CE_FAILED);
}

static void watch_children(zhandle_t *zh, int type, int state, const char *path, void *ctx);
static void children_done(int rc, const struct String_vector *v, const void *data);

static void get_children(struct clock *cl)
{
	struct cluster *c = cl->c;
	struct zreq *rq;
	zhandle_t *zh;
	bool arm;
	int rc;

	pthread_mutex_lock(&c->mu);
	arm = !cl->watching;
	cl->watching = true;
	pthread_mutex_unlock(&c->mu);
	rq = zreq_new(c, cl, &zh);
	if (!rq) {
		later(cl, CE_FAILED);
		return;
	}
	rc = arm ? zoo_awget_children(zh, cl->dir, watch_children, cl, children_done, rq)
		 : zoo_aget_children(zh, cl->dir, 0, children_done, rq);
	if (rc != ZOK) {
		free(rq);
		pthread_mutex_lock(&c->mu);
		if (arm)
			cl->watching = false;
		pthread_mutex_unlock(&c->mu);
		later(cl, CE_FAILED);
	}
}

static void watch_children(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct clock *cl = ctx;
	bool interested;

	pthread_mutex_lock(&cl->c->mu);
	cl->watching = false;
	/* Who queued or left matters only while we hold or wait. */
	interested = !cl->c->stopping && type != ZOO_SESSION_EVENT &&
		     (cl->fsm.st == CL_ACQUIRING || cl->fsm.st == CL_HELD);
	pthread_mutex_unlock(&cl->c->mu);
	if (interested)
		get_children(cl);
}

static void create_child(struct clock *cl);

static void peer_done(int rc, const char *value, int len, const struct Stat *stat,
		      const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct clock *cl = rq->cl;
	long long seq = rq->seq;
	/* ZNONODE: it left already, and the next listing names the next. */
	bool ok = heard(rq, rc) && rc == ZOK;

	pthread_mutex_lock(&cl->c->mu);
	if (cl->peer_seq == seq)
		cl->peer_reading = false;
	if (ok && cl->peer[0] && cl->peer_seq == seq) {
		size_t n = value && len > 0 ? (size_t)len : 0;

		if (n >= sizeof(cl->peer_ident))
			n = sizeof(cl->peer_ident) - 1;
		/* Another daemon's data: printable text or nothing. */
		for (size_t i = 0; i < n; i++)
			cl->peer_ident[i] = (unsigned char)value[i] < ' ' ? '?' : value[i];
		cl->peer_ident[n] = '\0';
		cl->peer_token = stat ? stat->czxid : 0;
	}
	pthread_mutex_unlock(&cl->c->mu);
}

/* Reads the data of znode `name` of cl's directory (whose holder it is). */
static void read_peer(struct clock *cl, const char *name)
{
	char path[sizeof(cl->dir) + sizeof(cl->peer) + 1];
	struct zreq *rq;
	zhandle_t *zh;

	snprintf(path, sizeof(path), "%s/%s", cl->dir, name);
	rq = zreq_new(cl->c, cl, &zh);
	if (!rq)
		return;
	rq->seq = cluster_seq(name);
	if (zoo_aget(zh, path, 0, peer_done, rq) != ZOK) {
		free(rq);
		pthread_mutex_lock(&cl->c->mu);
		cl->peer_reading = false;
		pthread_mutex_unlock(&cl->c->mu);
	}
}

/* Notes the lowest znode of another daemon in listing v; true (and its
 * name in name) when its data is to be read: a new one, or one whose read
 * failed. Called with c->mu held. */
static bool new_peer(struct clock *cl, const struct String_vector *v, bool mine,
		     char name[sizeof(cl->peer)])
{
	long long min = -1;
	const char *first = "";

	for (int32_t i = 0; i < v->count; i++) {
		long long s = cluster_seq(v->data[i]);

		if (s < 0 || (mine && s == cl->seq) || strlen(v->data[i]) >= sizeof(cl->peer))
			continue;
		if (min < 0 || s < min) {
			min = s;
			first = v->data[i];
		}
	}
	if (strcmp(first, cl->peer) != 0) {
		snprintf(cl->peer, sizeof(cl->peer), "%s", first);
		cl->peer_seq = min;
		cl->peer_ident[0] = '\0';
		cl->peer_token = 0;
		cl->peer_reading = false;
	}
	if (!cl->peer[0] || cl->peer_ident[0] || cl->peer_reading)
		return false;
	cl->peer_reading = true;
	snprintf(name, sizeof(cl->peer), "%s", first);
	return true;
}

static void children_done(int rc, const struct String_vector *v, const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct clock *cl = rq->cl;
	struct cluster *c = cl->c;
	long long min = -1;
	unsigned behind = 0;
	bool mine = false;
	enum cl_event e = CE_FAILED;
	bool have_event = false, recreate, fetch_peer = false;
	char peer[sizeof(cl->peer)];

	if (!heard(rq, rc))
		return;
	pthread_mutex_lock(&c->mu);
	/* A failed listing leaves no watch, and if it was the request that
	 * armed one (connection loss), none is armed: the next listing must
	 * arm it again, or a holder or waiter never hears of the others. */
	if (rc != ZOK)
		cl->watching = false;
	if (rc == ZOK) {
		for (int32_t i = 0; i < v->count; i++) {
			long long s = cluster_seq(v->data[i]);

			if (s < 0)
				continue;
			if (min < 0 || s < min)
				min = s;
			/* After a connection loss during create, our znode
			 * may exist without our knowing its name: the session
			 * prefix finds it. */
			if (!cl->node[0] && cl->fsm.st == CL_ACQUIRING &&
			    strncmp(v->data[i], c->prefix, strlen(c->prefix)) == 0) {
				snprintf(cl->node, sizeof(cl->node), "%s/%s", cl->dir, v->data[i]);
				cl->seq = s;
			}
			if (cl->node[0] && s == cl->seq)
				mine = true;
			else if (cl->node[0] && s > cl->seq)
				behind++;
		}
		cl->waiters = (unsigned)(v->count - (mine ? 1 : 0));
		fetch_peer = new_peer(cl, v, mine, peer);
		if (cl->node[0] && !mine && cl->fsm.st != CL_HANDING_OVER) {
			/* Our znode is gone: the server dropped our session. */
			cl->node[0] = '\0';
			e = CE_DELETED;
			have_event = true;
		} else if (mine && cl->fsm.st == CL_ACQUIRING && cl->seq == min &&
			   !c->suspect_since) {
			e = CE_FIRST;
			have_event = true;
		} else if (mine && cl->fsm.st == CL_HELD && behind > 0) {
			e = CE_BEHIND;
			have_event = true;
		}
	} else if (rc == ZNONODE && cl->fsm.st == CL_ACQUIRING) {
		cl->dir_known = false;
		if (cl->node[0]) {
			cl->node[0] = '\0';
			e = CE_DELETED;
			have_event = true;
		}
	} else if (cl->fsm.st == CL_ACQUIRING || cl->fsm.st == CL_HELD) {
		cl->retry = true;
	}
	/* Wanted, no znode of ours in the listing and none being created:
	 * the create was lost with the connection, or the container went. */
	recreate = !have_event && !cl->retry && !cl->creating &&
		   cl->fsm.st == CL_ACQUIRING && !cl->node[0];
	pthread_mutex_unlock(&c->mu);
	if (fetch_peer)
		read_peer(cl, peer);
	if (recreate)
		create_child(cl);
	if (have_event)
		step(cl, e);
	/* Somebody queued behind us before we were first: the listing that
	 * made us first is the last news of it, so recall at once (after one
	 * local batch). */
	if (have_event && e == CE_FIRST && behind > 0)
		step(cl, CE_BEHIND);
}

static void child_done(int rc, const char *name, const struct Stat *stat, const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct clock *cl = rq->cl;
	struct cluster *c = cl->c;

	pthread_mutex_lock(&c->mu);
	cl->creating = false;
	pthread_mutex_unlock(&c->mu);
	if (!heard(rq, rc))
		return;
	if (rc == ZOK) {
		pthread_mutex_lock(&c->mu);
		snprintf(cl->node, sizeof(cl->node), "%s", name);
		cl->seq = cluster_seq(strrchr(name, '/') ? strrchr(name, '/') + 1 : name);
		cl->token = stat ? stat->czxid : 0;
		pthread_mutex_unlock(&c->mu);
		get_children(cl);
	} else if (rc == ZNONODE) {
		/* The container was removed since we last used it. */
		pthread_mutex_lock(&c->mu);
		cl->dir_known = false;
		pthread_mutex_unlock(&c->mu);
		create_child(cl);
	} else if (rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT) {
		/* Created or not: the children listing tells (prefix). */
		get_children(cl);
	} else {
		log_err("cluster: creating a lock in %s: %s", cl->dir, zerror(rc));
		later(cl, CE_FAILED);
	}
}

static void dir_done(int rc, const char *name, const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct clock *cl = rq->cl;

	if (!heard(rq, rc)) {
		pthread_mutex_lock(&cl->c->mu);
		cl->creating = false;
		pthread_mutex_unlock(&cl->c->mu);
		return;
	}
	if (rc == ZOK || rc == ZNODEEXISTS) {
		pthread_mutex_lock(&cl->c->mu);
		cl->dir_known = true;
		pthread_mutex_unlock(&cl->c->mu);
		create_child(cl);
	} else {
		log_err("cluster: creating %s: %s", cl->dir, zerror(rc));
		pthread_mutex_lock(&cl->c->mu);
		cl->creating = false;
		pthread_mutex_unlock(&cl->c->mu);
		later(cl, CE_FAILED);
	}
}

/* Our place in the file's queue: the container first if it may be
 * missing (containers go when their last child does). */
static void create_child(struct clock *cl)
{
	struct cluster *c = cl->c;
	char path[sizeof(cl->dir) + 64];
	struct zreq *rq;
	zhandle_t *zh;
	bool dir;
	int rc;

	pthread_mutex_lock(&c->mu);
	dir = cl->dir_known;
	snprintf(path, sizeof(path), "%s/%s", cl->dir, c->prefix);
	cl->creating = true;
	pthread_mutex_unlock(&c->mu);
	rq = zreq_new(c, cl, &zh);
	if (!rq)
		rc = ZSYSTEMERROR;
	else if (dir)
		rc = zoo_acreate2(zh, path, c->ident, (int)strlen(c->ident), &ZOO_OPEN_ACL_UNSAFE,
				  ZOO_EPHEMERAL_SEQUENTIAL, child_done, rq);
	else
		rc = zoo_acreate(zh, cl->dir, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_CONTAINER,
				 dir_done, rq);
	if (!rq || rc != ZOK) {
		free(rq);
		pthread_mutex_lock(&c->mu);
		cl->creating = false;
		pthread_mutex_unlock(&c->mu);
		later(cl, CE_FAILED);
	}
}

static void delete_done(int rc, const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct clock *cl = rq->cl;
	bool gone = rc == ZOK || rc == ZNONODE || rc == ZSESSIONEXPIRED;

	if (!heard(rq, rc))
		return;
	if (!gone) {
		later(cl, CE_IDLE);
		return;
	}
	pthread_mutex_lock(&cl->c->mu);
	cl->node[0] = '\0';
	cl->token = 0;
	pthread_mutex_unlock(&cl->c->mu);
	step(cl, CE_DELETED);
}

static void delete_node(struct clock *cl)
{
	struct cluster *c = cl->c;
	char node[sizeof(cl->node)];
	struct zreq *rq;
	zhandle_t *zh;

	pthread_mutex_lock(&c->mu);
	snprintf(node, sizeof(node), "%s", cl->node);
	pthread_mutex_unlock(&c->mu);
	if (!node[0]) {
		step(cl, CE_DELETED);
		return;
	}
	rq = zreq_new(c, cl, &zh);
	if (!rq || zoo_adelete(zh, node, -1, delete_done, rq) != ZOK) {
		free(rq);
		later(cl, CE_IDLE);
	}
}

static void act(struct clock *cl, unsigned a)
{
	struct cluster *c = cl->c;

	if (a & CA_CREATE)
		create_child(cl);
	if (a & CA_GRANT) {
		pthread_mutex_lock(&c->mu);
		c->st.grants++;
		pthread_mutex_unlock(&c->mu);
		c->ops.granted(c->arg, cl->key);
	}
	if (a & CA_RECALL) {
		pthread_mutex_lock(&c->mu);
		c->st.recalls++;
		pthread_mutex_unlock(&c->mu);
		c->ops.recall(c->arg, cl->key);
	}
	if (a & CA_LOST) {
		pthread_mutex_lock(&c->mu);
		c->st.losses++;
		pthread_mutex_unlock(&c->mu);
		log_err("cluster: lock of %s lost (no contact with ZooKeeper for the session timeout)",
			cl->dir);
		c->ops.lost(c->arg, cl->key);
	}
	if (a & CA_DELETE) {
		if (c->ops.flush)
			c->ops.flush(c->arg, cl->key);
		delete_node(cl);
	}
}

void cluster_acquire(struct cluster *c, uint64_t key, const char *name)
{
	struct clock *cl;

	pthread_mutex_lock(&c->mu);
	cl = find(c, key);
	if (!cl) {
		cl = calloc(1, sizeof(*cl));
		if (!cl) {
			pthread_mutex_unlock(&c->mu);
			log_err("cluster: out of memory");
			return;
		}
		cl->c = c;
		cl->key = key;
		snprintf(cl->dir, sizeof(cl->dir), "%s/locks/%s", c->cfg.spec.path, name);
		ht_insert(&c->locks, &cl->link, hash_mix64(key));
	}
	pthread_mutex_unlock(&c->mu);
	step(cl, CE_WANT);
}

void cluster_idle(struct cluster *c, uint64_t key)
{
	struct clock *cl;

	pthread_mutex_lock(&c->mu);
	cl = find(c, key);
	pthread_mutex_unlock(&c->mu);
	if (cl)
		step(cl, CE_IDLE);
}

int cluster_lock_info(struct cluster *c, uint64_t key, struct cluster_lock_info *out)
{
	struct clock *cl;

	pthread_mutex_lock(&c->mu);
	cl = find(c, key);
	if (cl) {
		enum cl_state st = cl->fsm.st;
		bool ours = st == CL_HELD || st == CL_RECALLED || st == CL_LOST ||
			    st == CL_HANDING_OVER;

		out->st = st;
		out->token = st == CL_HELD || st == CL_RECALLED ? cl->token : 0;
		out->waiters = cl->waiters;
		snprintf(out->holder, sizeof(out->holder), "%s", ours ? c->ident : cl->peer_ident);
		out->holder_token = ours ? cl->token : cl->peer_token;
		if (ours)
			out->remote_waiters = (int)cl->waiters;
		else if (st == CL_ACQUIRING)
			out->remote_waiters = cl->waiters > 0 ? (int)cl->waiters - 1 : 0;
		else
			out->remote_waiters = -1;
	}
	pthread_mutex_unlock(&c->mu);
	return cl ? 0 : -ENOENT;
}

struct active {
	uint64_t *keys;
	size_t n, max;
};

static void active_one(struct hlink *l, void *arg)
{
	struct active *a = arg;
	const struct clock *cl = list_entry(l, struct clock, link);

	if (cl->fsm.st == CL_REMOTE)
		return;
	if (a->n < a->max)
		a->keys[a->n] = cl->key;
	a->n++;
}

size_t cluster_active_keys(struct cluster *c, uint64_t *keys, size_t max)
{
	struct active a = { keys, 0, max };

	pthread_mutex_lock(&c->mu);
	ht_each(&c->locks, active_one, &a);
	pthread_mutex_unlock(&c->mu);
	return a.n;
}

const char *cluster_ident(const struct cluster *c)
{
	return c->ident;
}

void cluster_reset_stats(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	memset(&c->st, 0, sizeof(c->st));
	pthread_mutex_unlock(&c->mu);
}

void cluster_get_stats(struct cluster *c, struct cluster_stats *out)
{
	pthread_mutex_lock(&c->mu);
	*out = c->st;
	pthread_mutex_unlock(&c->mu);
}

static void session_watch(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct cluster *c = ctx;

	if (type != ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&c->mu);
	if (state == ZOO_CONNECTED_STATE) {
		c->connected = true;
	} else if (state == ZOO_EXPIRED_SESSION_STATE) {
		c->connected = false;
		c->expired = true;
	} else {
		if (c->connected)
			log_err("cluster: connection to ZooKeeper lost, reconnecting");
		c->connected = false;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void ping_done(int rc, const struct Stat *stat, const void *data)
{
	struct zreq *rq = (struct zreq *)data;
	struct cluster *c = rq->c;

	heard(rq, rc);
	pthread_mutex_lock(&c->mu);
	c->ping_out = false;
	pthread_mutex_unlock(&c->mu);
}

struct collect {
	struct clock **v;
	size_t n, cap;
};

static void collect_one(struct hlink *l, void *arg)
{
	struct collect *k = arg;

	if (k->n < k->cap)
		k->v[k->n++] = list_entry(l, struct clock, link);
}

/* Every lock, for the watchdog's passes; NULL on allocation failure. Called
 * with c->mu held. */
static struct clock **all_locks(struct cluster *c, size_t *n)
{
	struct collect k = { .cap = ht_count(&c->locks) };

	k.v = calloc(k.cap ? k.cap : 1, sizeof(*k.v));
	if (k.v)
		ht_each(&c->locks, collect_one, &k);
	*n = k.n;
	return k.v;
}

static int session_open(struct cluster *c);

/* The session timeout as the server granted it, or ours if shorter. */
static uint64_t timeout_ns(struct cluster *c)
{
	uint64_t t = c->cfg.timeout_ms * 1000000ull;
	int granted = c->zh ? zoo_recv_timeout(c->zh) : 0;

	if (granted > 0 && (uint64_t)granted * 1000000ull < t)
		t = (uint64_t)granted * 1000000ull;
	return t;
}

/* How often the watchdog looks, and so the margin it keeps before the
 * session timeout. */
static uint64_t watchdog_period(const struct cluster *c)
{
	uint64_t period = c->cfg.timeout_ms * 1000000ull / 6;

	return period < 50000000ull ? 50000000ull : period;
}

bool cluster_trusted(struct cluster *c)
{
	bool ok;

	pthread_mutex_lock(&c->mu);
	ok = !c->suspect_since && !c->expired &&
	     now_ns() - c->last_heard + watchdog_period(c) < timeout_ns(c);
	pthread_mutex_unlock(&c->mu);
	return ok;
}

void cluster_count_fenced(struct cluster *c)
{
	pthread_mutex_lock(&c->mu);
	c->st.fenced_writes++;
	pthread_mutex_unlock(&c->mu);
}

static void *watchdog(void *arg)
{
	struct cluster *c = arg;
	uint64_t period = watchdog_period(c);
	pthread_mutex_lock(&c->mu);
	while (!c->stopping) {
		struct timespec ts;
		uint64_t now, t;
		struct clock **v = NULL;
		size_t n = 0;
		bool suspect = false, expired, ping;

		clock_gettime(CLOCK_REALTIME, &ts);
		t = (uint64_t)ts.tv_nsec + period;
		ts.tv_sec += (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
		if (c->stopping)
			break;
		now = now_ns();
		/* Our own clock, before ZooKeeper tells us: the server may
		 * drop the session once the timeout passed since it last
		 * heard from us, which is no earlier than last_heard. One
		 * period of margin covers this thread's own lateness. */
		if (!c->suspect_since && now - c->last_heard + period >= timeout_ns(c)) {
			c->suspect_since = now;
			suspect = true;
			log_err("cluster: no answer from ZooKeeper for %llu ms: cached locks are no longer trusted",
				(unsigned long long)((now - c->last_heard) / 1000000));
		}
		expired = c->expired;
		ping = !c->ping_out && c->connected && !expired;
		if (ping)
			c->ping_out = true;
		v = all_locks(c, &n);
		pthread_mutex_unlock(&c->mu);

		if (ping) {
			zhandle_t *zh;
			struct zreq *rq = zreq_new(c, NULL, &zh);

			if (!rq || zoo_aexists(zh, c->cfg.spec.path, 0, ping_done, rq) != ZOK) {
				free(rq);
				pthread_mutex_lock(&c->mu);
				c->ping_out = false;
				pthread_mutex_unlock(&c->mu);
			}
		}
		for (size_t i = 0; v && i < n; i++)
			if (suspect || expired)
				step(v[i], CE_SUSPECT);
		if (expired) {
			/* The old handle is dead; every znode it had is gone. */
			log_err("cluster: ZooKeeper session expired, opening a new one");
			pthread_mutex_lock(&c->mu);
			zhandle_t *old = c->zh;
			c->zh = NULL;
			c->expired = false;
			c->connected = false;
			pthread_mutex_unlock(&c->mu);
			zookeeper_close(old);
			if (session_open(c) < 0) {
				pthread_mutex_lock(&c->mu);
				c->expired = true;
				pthread_mutex_unlock(&c->mu);
			}
			for (size_t i = 0; v && i < n; i++) {
				pthread_mutex_lock(&c->mu);
				bool had = v[i]->node[0] != '\0' || v[i]->fsm.st == CL_ACQUIRING;
				v[i]->node[0] = '\0';
				v[i]->watching = false;
				pthread_mutex_unlock(&c->mu);
				if (had)
					step(v[i], CE_DELETED);
			}
		}
		for (size_t i = 0; v && i < n; i++) {
			bool retry;
			enum cl_state st;

			pthread_mutex_lock(&c->mu);
			retry = v[i]->retry && c->connected;
			if (retry)
				v[i]->retry = false;
			st = v[i]->fsm.st;
			pthread_mutex_unlock(&c->mu);
			if (!retry)
				continue;
			if (st == CL_HANDING_OVER)
				delete_node(v[i]);
			else if (st == CL_ACQUIRING || st == CL_HELD)
				get_children(v[i]);
			else if (st == CL_REMOTE)
				step(v[i], CE_WANT);
		}
		free(v);
		pthread_mutex_lock(&c->mu);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Makes PATH and PATH/locks (persistent). Synchronous: only at start. */
static int make_root(struct cluster *c)
{
	char path[sizeof(c->cfg.spec.path) + 8];
	size_t len = strlen(c->cfg.spec.path);

	snprintf(path, sizeof(path), "%s/locks", c->cfg.spec.path);
	for (size_t i = 1; i <= len + 6; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		char save = path[i];
		int rc;

		path[i] = '\0';
		rc = zoo_create(c->zh, path, "", 0, &ZOO_OPEN_ACL_UNSAFE, ZOO_PERSISTENT, NULL, 0);
		path[i] = save;
		if (rc != ZOK && rc != ZNODEEXISTS) {
			log_err("cluster: creating %.*s: %s", (int)i, path, zerror(rc));
			return -EIO;
		}
	}
	return 0;
}

/* A new session; waits at most the session timeout for it. */
static int session_open(struct cluster *c)
{
	zhandle_t *zh = zookeeper_init(c->cfg.spec.servers, session_watch,
				       (int)c->cfg.timeout_ms, NULL, c, 0);
	struct timespec ts;
	uint64_t t;
	bool ok;

	if (!zh) {
		log_err("cluster: cannot use ZooKeeper servers %s: %s", c->cfg.spec.servers,
			strerror(errno));
		return -errno ? -errno : -EIO;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	t = (uint64_t)ts.tv_nsec + c->cfg.timeout_ms * 1000000ull;
	ts.tv_sec += (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	pthread_mutex_lock(&c->mu);
	c->zh = zh;
	while (!c->connected && !c->stopping &&
	       pthread_cond_timedwait(&c->cv, &c->mu, &ts) == 0)
		;
	ok = c->connected;
	if (ok) {
		const clientid_t *id = zoo_client_id(zh);

		snprintf(c->prefix, sizeof(c->prefix), "lock-%016llx-",
			 (unsigned long long)id->client_id);
		c->last_heard = now_ns();
		c->suspect_since = 0;
	}
	pthread_mutex_unlock(&c->mu);
	if (!ok) {
		log_err("cluster: no ZooKeeper server of %s answered within %u ms",
			c->cfg.spec.servers, c->cfg.timeout_ms);
		return -ETIMEDOUT;
	}
	return make_root(c);
}

int cluster_new(struct cluster **out, const struct cluster_config *cfg,
		const struct cluster_ops *ops, void *arg)
{
	struct cluster *c = calloc(1, sizeof(*c));
	char host[256] = "";
	int rc;

	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->ops = *ops;
	c->arg = arg;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	gethostname(host, sizeof(host) - 1);
	snprintf(c->ident, sizeof(c->ident), "%s %d", host, (int)getpid());
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	rc = ht_init(&c->locks, 64, clock_hash);
	if (rc == 0)
		rc = session_open(c);
	if (rc == 0) {
		rc = -pthread_create(&c->watchdog, NULL, watchdog, c);
		c->watchdog_started = rc == 0;
	}
	if (rc < 0) {
		cluster_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

static void free_one(struct hlink *l, void *arg)
{
	free(list_entry(l, struct clock, link));
}

void cluster_free(struct cluster *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (c->watchdog_started)
		pthread_join(c->watchdog, NULL);
	/* Closing runs the outstanding completions (ZCLOSING), which still
	 * use the locks: they go after. */
	if (c->zh)
		zookeeper_close(c->zh);
	if (c->locks.b) {
		ht_each(&c->locks, free_one, NULL);
		ht_free(&c->locks);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
#else
int cluster_new(struct cluster **out, const struct cluster_config *cfg,
		const struct cluster_ops *ops, void *arg)
{
	log_err("cluster: this lockfs was built without ZooKeeper support "
		"(install libzookeeper-mt-dev and rebuild)");
	return -ENOTSUP;
}

void cluster_free(struct cluster *c)
{
}

void cluster_acquire(struct cluster *c, uint64_t key, const char *name)
{
}

void cluster_idle(struct cluster *c, uint64_t key)
{
}

int cluster_lock_info(struct cluster *c, uint64_t key, struct cluster_lock_info *out)
{
	return -ENOENT;
}

void cluster_get_stats(struct cluster *c, struct cluster_stats *out)
{
	memset(out, 0, sizeof(*out));
}

bool cluster_trusted(struct cluster *c)
{
	return false;
}

void cluster_count_fenced(struct cluster *c)
{
}

void cluster_reset_stats(struct cluster *c)
{
}

size_t cluster_active_keys(struct cluster *c, uint64_t *keys, size_t max)
{
	return 0;
}

const char *cluster_ident(const struct cluster *c)
{
	return "";
}
#endif
