/*
 * Quotas for the process as a whole (quota_service.h): the shared usage
 * table, the state file's path and first read, and the writer thread's
 * life in the owning process.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "socks5d/log.h"
#include "socks5d/quota_service.h"

/* Entries are made as users first move bytes; untouched ones cost no
 * memory (quota.h), so the bound is generous. */
#define QUOTA_TABLE_CAPACITY 65536

static struct quota_table *quota_table;
static struct quota_writer *quota_writer;
static pid_t quota_owner;
static char quota_path[PATH_MAX];

struct quota_table *
quota_service_table(void)
{
	return quota_table;
}

/* Read what the last run counted; a file that cannot be trusted is set
 * aside for the operator and counting starts again from zero. */
static void
quota_service_load(const struct config *cfg)
{
	char why[256];
	int rc;

	rc = quota_state_read(quota_table, cfg->quotas, quota_path,
	    (int64_t)time(NULL), why, sizeof(why));
	if (rc == 1) {
		log_info("quota: %s: no state file yet, counting from zero",
		    quota_path);
	} else if (rc == -1) {
		log_error("quota: %s: %s; usage starts from zero", quota_path,
		    why);
		if (access(quota_path, F_OK) == 0 &&
		    quota_state_quarantine(quota_path) == 0)
			log_error("quota: the unreadable file is kept as "
			    "%s.bad", quota_path);
	} else {
		log_info("quota: usage of %zu user(s) read from %s",
		    quota_table_count(quota_table), quota_path);
	}
}

static void
quota_service_start_writer(const struct config *cfg)
{
	/* systemd's StateDirectory= makes it; by hand, one level is made
	 * here, and a failure shows in the writer's log lines. */
	if (mkdir(cfg->state_dir, 0750) == -1 && errno != EEXIST)
		log_warn("quota: cannot make state_dir %s", cfg->state_dir);
	snprintf(quota_path, sizeof(quota_path), "%s/%s", cfg->state_dir,
	    QUOTA_STATE_FILE);
	quota_service_load(cfg);
	quota_writer = quota_writer_start(quota_table, cfg->quotas,
	    quota_path, QUOTA_SAVE_SECONDS);
}

int
quota_service_start(const struct config *cfg)
{
	if (quota_table == NULL &&
	    (quota_table = quota_table_create(QUOTA_TABLE_CAPACITY)) == NULL) {
		log_warn("quota: cannot make the usage table");
		return -1;
	}
	quota_owner = getpid();
	if (quotas_count(cfg->quotas) > 0)
		quota_service_start_writer(cfg);
	return 0;
}

void
quota_service_reload(const struct config *next)
{
	if (quota_table == NULL || getpid() != quota_owner)
		return;
	if (quota_writer != NULL) {
		if (strncmp(quota_path, next->state_dir,
		    strlen(next->state_dir)) != 0)
			log_warnx("reload: [server] state_dir takes effect at "
			    "the next restart");
		quota_writer_set_defs(quota_writer, next->quotas);
	} else if (quotas_count(next->quotas) > 0) {
		quota_service_start_writer(next);
	}
}

void
quota_service_fork_prepare(void)
{
	if (quota_writer != NULL && getpid() == quota_owner)
		quota_writer_hold(quota_writer);
}

void
quota_service_fork_done(void)
{
	if (quota_writer != NULL && getpid() == quota_owner)
		quota_writer_release(quota_writer);
}

void
quota_service_stop(void)
{
	if (quota_writer == NULL || getpid() != quota_owner)
		return;
	quota_writer_stop(quota_writer);
	quota_writer = NULL;
}
