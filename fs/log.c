#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>
#include <pthread.h>

/* Written once at start-up (and once more when daemonizing, before any
 * worker thread exists), read by every thread afterwards. */
static enum log_level log_level = LOG_LVL_WARN;
static bool log_to_syslog;
static const char *log_ident = "lockfs";

void log_init(const char *ident, enum log_level level, bool use_syslog)
{
	log_ident = ident;
	log_level = level;
	log_set_syslog(use_syslog);
}

void log_set_syslog(bool use_syslog)
{
	if (use_syslog && !log_to_syslog)
		openlog(log_ident, LOG_PID, LOG_DAEMON);
	log_to_syslog = use_syslog;
}

bool log_enabled(enum log_level level)
{
	return level <= log_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	if (log_to_syslog) {
		vsyslog(prio[level], fmt, ap);
	} else {
		/* One fprintf per message keeps lines from different threads whole. */
		char line[1024];
		vsnprintf(line, sizeof(line), fmt, ap);
		fprintf(stderr, "%s: %s\n", log_ident, line);
	}
	va_end(ap);
}
