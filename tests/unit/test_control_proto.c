/*
 * Unit tests for the control socket's codec and "socks5d ctl": every
 * command parsed, every kind of bad request refused with its reason,
 * records round-tripped through the percent-encoding, overflow, the end
 * line, client matching, the JSON and table printers, and ctl_main against
 * a forked fake daemon (exit statuses, config lookup, a stalled daemon).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "socks5d/control_proto.h"
#include "socks5d/ctl.h"

static struct control_request req;

static void
test_parse_ok(const char *line, enum control_cmd cmd, enum control_kill kill,
    const char *arg1, const char *arg2)
{
	const char *why = NULL;

	if (control_parse_request(line, strlen(line), &req, &why) != 0)
		fail_msg("\"%s\": refused: %s", line, why);
	assert_int_equal(req.cmd, cmd);
	assert_int_equal(req.kill, kill);
	assert_string_equal(req.arg1, arg1);
	assert_string_equal(req.arg2, arg2);
}

static void
test_commands(void **state)
{
	uint8_t a[16] = { 0 };

	(void)state;
	test_parse_ok("v1 sessions\n", CONTROL_CMD_SESSIONS, 0, "", "");
	test_parse_ok("v1 sessions", CONTROL_CMD_SESSIONS, 0, "", "");
	test_parse_ok("v1\tusers\r\n", CONTROL_CMD_USERS, 0, "", "");
	test_parse_ok("v1 ping\n", CONTROL_CMD_PING, 0, "", "");
	test_parse_ok("v1 kill 12345.67\n", CONTROL_CMD_KILL,
	    CONTROL_KILL_ID, "12345.67", "");
	assert_int_equal(req.id_pid, 12345);
	assert_int_equal(req.id_seq, 67);
	test_parse_ok("v1 kill 2147483647.18446744073709551615",
	    CONTROL_CMD_KILL, CONTROL_KILL_ID,
	    "2147483647.18446744073709551615", "");
	assert_true(req.id_seq == UINT64_MAX);
	test_parse_ok("v1 kill user al\xc3\xaf" "ce:x\n", CONTROL_CMD_KILL,
	    CONTROL_KILL_USER, "al\xc3\xaf" "ce:x", "");
	test_parse_ok("v1 kill user user\n", CONTROL_CMD_KILL,
	    CONTROL_KILL_USER, "user", "");
	test_parse_ok("v1 kill client 10.1.2.3/8\n", CONTROL_CMD_KILL,
	    CONTROL_KILL_CLIENT, "10.1.2.3/8", "");
	a[0] = 10;
	assert_int_equal(req.family, AF_INET);
	assert_int_equal(req.prefix, 8);
	assert_memory_equal(req.addr, a, 16);
	test_parse_ok("v1 kill client 2001:db8::1\n", CONTROL_CMD_KILL,
	    CONTROL_KILL_CLIENT, "2001:db8::1", "");
	assert_int_equal(req.family, AF_INET6);
	assert_int_equal(req.prefix, 128);
	test_parse_ok("v1 kill client ::ffff:192.0.2.77/120", CONTROL_CMD_KILL,
	    CONTROL_KILL_CLIENT, "::ffff:192.0.2.77/120", "");
	memcpy(a, (uint8_t[]){ 192, 0, 2, 0 }, 4);
	assert_int_equal(req.family, AF_INET);
	assert_int_equal(req.prefix, 24);
	assert_memory_equal(req.addr, a, 16);
	test_parse_ok("v1 quota reset bob\n", CONTROL_CMD_QUOTA_RESET, 0,
	    "bob", "");
	test_parse_ok("v1 quota reset bob monthly-1.x\n",
	    CONTROL_CMD_QUOTA_RESET, 0, "bob", "monthly-1.x");
}

static void
test_refused(const char *line, size_t len, const char *want)
{
	const char *why = NULL;

	if (control_parse_request(line, len, &req, &why) != -1)
		fail_msg("\"%.*s\": accepted", (int)len, line);
	assert_non_null(why);
	if (strstr(why, want) == NULL)
		fail_msg("\"%.*s\": \"%s\", want \"%s\"", (int)len, line, why,
		    want);
	assert_int_equal(req.cmd, CONTROL_CMD_NONE);
	assert_int_equal(req.kill, CONTROL_KILL_NONE);
}

#define test_bad(line, want)	test_refused(line, strlen(line), want)

static void
test_bad_requests(void **state)
{
	char big[CONTROL_LINE_MAX + 2];

	(void)state;
	test_bad("v2 ping\n", "version");
	test_bad("ping\n", "version");
	test_bad("V1 ping\n", "version");
	test_bad("v1\n", "missing command");
	test_bad("v1 frob\n", "unknown command");
	test_bad("v1 PING\n", "unknown command");
	test_bad("v1 ping now\n", "too many");
	test_bad("v1 sessions all\n", "too many");
	test_bad("v1 kill\n", "missing session id");
	test_bad("v1 kill user\n", "missing user name");
	test_bad("v1 kill client\n", "missing client");
	test_bad("v1 kill 1.2 3.4\n", "too many");
	test_bad("v1 kill user a b\n", "too many");
	test_bad("v1 a b c d e f g h\n", "too many");
	test_bad("v1 quota\n", "unknown quota command");
	test_bad("v1 quota clear bob\n", "unknown quota command");
	test_bad("v1 quota reset\n", "missing user name");
	test_bad("v1 quota reset a q x\n", "too many");
	test_bad("v1 quota reset a q/1\n", "bad quota name");
	/* Session ids */
	test_bad("v1 kill 12345\n", "bad session id");
	test_bad("v1 kill 0.1\n", "bad session id");
	test_bad("v1 kill 1.\n", "bad session id");
	test_bad("v1 kill .1\n", "bad session id");
	test_bad("v1 kill 1.2.3\n", "bad session id");
	test_bad("v1 kill -1.2\n", "bad session id");
	test_bad("v1 kill 2147483648.1\n", "bad session id");
	test_bad("v1 kill 1.18446744073709551616\n", "bad session id");
	/* Addresses */
	test_bad("v1 kill client 10.0.0.0/33\n", "bad client");
	test_bad("v1 kill client ::/129\n", "bad client");
	test_bad("v1 kill client 1.2.3\n", "bad client");
	test_bad("v1 kill client 1.2.3.4/\n", "bad client");
	test_bad("v1 kill client 1.2.3.4/-1\n", "bad client");
	test_bad("v1 kill client 1.2.3.4/8/8\n", "bad client");
	test_bad("v1 kill client host.example\n", "bad client");
	/* Bytes and words */
	test_bad("", "empty request");
	test_bad("\n", "empty request");
	test_bad("\r\n", "empty request");
	test_bad("v1  ping\n", "empty word");
	test_bad(" v1 ping\n", "empty word");
	test_bad("v1 ping \n", "empty word");
	test_bad("v1 ping\t\n", "empty word");
	test_bad("v1 ping\r", "control character");
	test_bad("v1 pi\x01ng\n", "control character");
	test_bad("v1 ping\x7f\n", "control character");
	test_bad("v1 ping\n\n", "control character");
	test_bad("v1 kill user a\x1b[2J\n", "control character");
	test_refused("v1 ping\0\n", 9, "NUL");
	test_refused("v1 kill user a\0b\n", 17, "NUL");
	memset(big, 'a', sizeof(big));
	memcpy(big, "v1 kill user ", 13);
	big[13 + 256] = '\n';
	test_refused(big, 13 + 257, "longer than 255");
	/* Exactly at the limit it is the content that is wrong. */
	memset(big, 'a', sizeof(big));
	big[CONTROL_LINE_MAX - 1] = '\n';
	test_refused(big, CONTROL_LINE_MAX, "version");
	test_refused(big, CONTROL_LINE_MAX - 1, "version");
	big[CONTROL_LINE_MAX - 1] = 'a';
	big[CONTROL_LINE_MAX] = '\n';
	test_refused(big, CONTROL_LINE_MAX + 1, "too long");
	test_refused(big, CONTROL_LINE_MAX, "too long");	/* no "\n" */
}

static void
test_client_match(void **state)
{
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
	const char *why;

	(void)state;
	assert_int_equal(control_parse_request("v1 kill client 10.1.0.0/16",
	    26, &req, &why), 0);
	inet_pton(AF_INET, "10.1.200.3", &in.sin_addr);
	assert_true(control_client_match(&req, (struct sockaddr *)&in));
	inet_pton(AF_INET6, "::ffff:10.1.0.1", &in6.sin6_addr);
	assert_true(control_client_match(&req, (struct sockaddr *)&in6));
	inet_pton(AF_INET, "10.2.0.1", &in.sin_addr);
	assert_false(control_client_match(&req, (struct sockaddr *)&in));
	inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
	assert_false(control_client_match(&req, (struct sockaddr *)&in6));

	assert_int_equal(control_parse_request("v1 kill client 2001:db8::9/33",
	    29, &req, &why), 0);
	assert_true(control_client_match(&req, (struct sockaddr *)&in6));
	inet_pton(AF_INET6, "2001:db8:8000::1", &in6.sin6_addr);
	assert_false(control_client_match(&req, (struct sockaddr *)&in6));
	assert_false(control_client_match(&req, (struct sockaddr *)&in));

	assert_int_equal(control_parse_request("v1 kill client 0.0.0.0/0", 24,
	    &req, &why), 0);
	assert_true(control_client_match(&req, (struct sockaddr *)&in));
	assert_false(control_client_match(&req, (struct sockaddr *)&in6));
	assert_int_equal(control_parse_request("v1 ping", 7, &req, &why), 0);
	assert_false(control_client_match(&req, (struct sockaddr *)&in));
}

/* A session record with every byte that needs encoding. */
static size_t
test_session(char *buf, size_t cap, int *rc)
{
	static const char nasty[] = "a b\tc%d=e\n\x01\x7f\x80\xff\xc3\xa9";
	struct control_record rec;

	control_record_begin(&rec, buf, cap, "session");
	control_record_str(&rec, "id", "123.4");
	control_record_mem(&rec, "dest", nasty, sizeof(nasty));	/* + NUL */
	control_record_str(&rec, "user", NULL);
	control_record_u64(&rec, "up", UINT64_MAX);
	control_record_double(&rec, "rate", 1234.5678);
	control_record_str(&rec, "k=y %", "v");
	*rc = control_record_end(&rec);
	return rec.len;
}

static void
test_record_roundtrip(void **state)
{
	static const char nasty[] = "a b\tc%d=e\n\x01\x7f\x80\xff\xc3\xa9";
	struct control_field f[8];
	const char *type;
	char buf[512];
	size_t len, n;
	int rc;

	(void)state;
	len = test_session(buf, sizeof(buf), &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(len, strlen(buf));
	assert_string_equal(buf, "session id=123.4 dest=a%20b%09c%25d%3De%0A"
	    "%01%7F%80%FF%C3%A9%00 user= up=18446744073709551615 "
	    "rate=1234.568 k%3Dy%20%25=v\n");
	assert_int_equal(control_parse_record(buf, f, 8, &n, &type), 0);
	assert_string_equal(type, "session");
	assert_int_equal(n, 6);
	assert_string_equal(f[0].key, "id");
	assert_string_equal(f[0].value, "123.4");
	assert_string_equal(f[1].key, "dest");
	assert_int_equal(f[1].value_len, sizeof(nasty));
	assert_memory_equal(f[1].value, nasty, sizeof(nasty));
	assert_int_equal(f[2].value_len, 0);
	assert_string_equal(f[3].value, "18446744073709551615");
	assert_string_equal(f[4].value, "1234.568");
	assert_string_equal(f[5].key, "k=y %");
	/* Too few fields allowed; none at all. */
	test_session(buf, sizeof(buf), &rc);
	assert_int_equal(control_parse_record(buf, f, 5, &n, &type), -1);
	strcpy(buf, "killed");
	assert_int_equal(control_parse_record(buf, f, 0, &n, &type), 0);
	assert_int_equal(n, 0);
	assert_string_equal(type, "killed");
}

static void
test_record_double(void **state)
{
	static const struct { double v; const char *want; } cases[] = {
		{ 12.5, "12.5" }, { 0, "0" }, { 1.0 / 3, "0.333" },
		{ -0.0001, "0" }, { -2.25, "-2.25" }, { 1e6, "1000000" },
		{ 0.0005, "0.001" },
	};
	struct control_record rec;
	char buf[64], want[64];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		control_record_begin(&rec, buf, sizeof(buf), "t");
		control_record_double(&rec, "r", cases[i].v);
		assert_int_equal(control_record_end(&rec), 0);
		snprintf(want, sizeof(want), "t r=%s\n", cases[i].want);
		assert_string_equal(buf, want);
	}
	control_record_begin(&rec, buf, sizeof(buf), "t");
	control_record_double(&rec, "r", 0.0 / 0.0);
	control_record_double(&rec, "s", 1.0 / 0.0);
	assert_int_equal(control_record_end(&rec), 0);
	assert_string_equal(buf, "t r=0 s=0\n");
}

/* Every cap: fits exactly from the line's length plus the NUL up. */
static void
test_record_overflow(void **state)
{
	char full[512], buf[512], two[1024];
	struct control_record rec;
	size_t len;
	int rc;

	(void)state;
	len = test_session(full, sizeof(full), &rc);
	for (size_t cap = 0; cap <= len + 1; cap++) {
		memset(buf, 'X', sizeof(buf));
		test_session(buf, cap, &rc);
		if (cap <= len) {
			assert_int_equal(rc, -1);
			assert_true(cap == 0 || buf[0] == '\0');
			assert_int_equal(buf[cap], 'X');  /* nothing past */
		} else {
			assert_int_equal(rc, 0);
			assert_string_equal(buf, full);
		}
	}
	/* Back to back, as a server fills its output buffer. */
	control_record_begin(&rec, two, sizeof(two), "user");
	control_record_str(&rec, "user", "a");
	assert_int_equal(control_record_end(&rec), 0);
	len = rec.len;
	test_session(two + len, sizeof(two) - len, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(strncmp(two, "user user=a\nsession id=", 23), 0);
}

static void
test_end_line(void **state)
{
	char buf[64];
	const char *reason;
	bool ok;

	(void)state;
	assert_int_equal(control_format_end(buf, sizeof(buf), true, "x"), 7);
	assert_string_equal(buf, "end ok\n");
	assert_int_equal(control_format_end(buf, sizeof(buf), false,
	    "no such session"), 26);
	assert_string_equal(buf, "end error no such session\n");
	assert_int_equal(control_parse_end(buf, &ok, &reason), 0);
	assert_false(ok);
	assert_string_equal(reason, "no such session");
	control_format_end(buf, sizeof(buf), false, NULL);
	assert_string_equal(buf, "end error\n");
	control_format_end(buf, sizeof(buf), false, "a\nb\x1b\x7f\xc3\xa9");
	assert_string_equal(buf, "end error a?b??\xc3\xa9\n");
	/* Cut short to fit; nothing when even the head does not. */
	assert_int_equal(control_format_end(buf, 14, false, "abcdef"), 13);
	assert_string_equal(buf, "end error ab\n");
	assert_int_equal(control_format_end(buf, 12, false, "abcdef"), 10);
	assert_string_equal(buf, "end error\n");
	assert_int_equal(control_format_end(buf, 8, true, NULL), 7);
	assert_int_equal(control_format_end(buf, 7, true, NULL), 0);

	strcpy(buf, "end ok\n");
	assert_int_equal(control_parse_end(buf, &ok, &reason), 0);
	assert_true(ok);
	strcpy(buf, "end error");
	assert_int_equal(control_parse_end(buf, &ok, &reason), 0);
	assert_false(ok);
	assert_string_equal(reason, "");
	strcpy(buf, "end ok now");
	assert_int_equal(control_parse_end(buf, &ok, &reason), -1);
	strcpy(buf, "end");
	assert_int_equal(control_parse_end(buf, &ok, &reason), -1);
	strcpy(buf, "session id=1");
	assert_int_equal(control_parse_end(buf, &ok, &reason), -1);
}

static void
test_bad_records(void **state)
{
	static const char *const bad[] = {
		"", "\n", "session  a=b", "session a", "session a=b=c",
		"=x a=b", "ses=sion a=b", "session %zz=1", "session a=%4",
		"session a=%", "session a=b c", "session a=\x01",
		"session a=\xc3\xa9", "session a=b\t", "session %00=1",
		"sess%00ion a=1", "session =1", "session a=b ", " session",
		"session a=b\n\n", "end ok",
	};
	struct control_field f[8];
	const char *type;
	char buf[64];
	size_t n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(buf, bad[i]);
		if (control_parse_record(buf, f, 8, &n, &type) != -1)
			fail_msg("\"%s\": accepted", bad[i]);
	}
	strcpy(buf, "user a=%e9%C3 b=\n");
	assert_int_equal(control_parse_record(buf, f, 8, &n, &type), 0);
	assert_int_equal(n, 2);
	assert_string_equal(f[0].value, "\xe9\xc3");
}

static void
test_json(void **state)
{
	static const struct control_field f[] = {
		{ "id", "12.10", 5 }, { "user", "42", 2 }, { "up", "1024", 4 },
		{ "rate", "12.5", 4 }, { "dest", "a\"b\\c\n\xff\0", 8 },
		{ "age", "007", 3 }, { "n", "-3", 2 }, { "x", "", 0 },
		{ "v", "1.", 2 }, { "w", "1e3", 3 }, { "z", "0", 1 },
	};
	struct ctl_record recs[2] = {
		{ "session", (struct control_field *)f, 11 },
		{ "killed", NULL, 0 },
	};
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	assert_non_null(out = open_memstream(&text, &len));
	assert_int_equal(ctl_print_json(out, recs, 2, true, ""), 0);
	assert_int_equal(ctl_print_json(out, NULL, 0, false, "no \"x\"\t"),
	    0);
	fclose(out);
	assert_string_equal(text, "{\"ok\":true,\"records\":[{\"type\":"
	    "\"session\",\"id\":\"12.10\",\"user\":\"42\",\"up\":1024,"
	    "\"rate\":12.5,\"dest\":\"a\\\"b\\\\c\\u000a\\u00ff\\u0000\","
	    "\"age\":\"007\",\"n\":-3,\"x\":\"\",\"v\":\"1.\",\"w\":\"1e3\","
	    "\"z\":0},{\"type\":\"killed\"}]}\n"
	    "{\"ok\":false,\"error\":\"no \\\"x\\\"\\u0009\","
	    "\"records\":[]}\n");
	free(text);
}

static void
test_table(void **state)
{
	static const struct control_field u1[] = {
		{ "user", "alice", 5 }, { "sessions", "2", 1 },
		{ "up", "100", 3 },
		{ "down", "2000", 4 }, { "rate", "1.5", 3 },
		{ "quota", "daily", 5 }, { "used", "300", 3 },
	}, u2[] = {
		{ "user", "b\x1b\xc2\x9b\xc3\xa9", 6 }, { "sessions", "10", 2 },
	}, k[] = {
		{ "count", "3", 1 }, { "why", "a\nb", 3 },
	};
	struct ctl_record recs[3] = {
		{ "user", (struct control_field *)u1, 7 },
		{ "user", (struct control_field *)u2, 2 },
		{ "killed", (struct control_field *)k, 2 },
	};
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	assert_non_null(out = open_memstream(&text, &len));
	assert_int_equal(ctl_print_table(out, recs, 3, "user"), 0);
	assert_int_equal(ctl_print_table(out, NULL, 0, "session"), 0);
	assert_int_equal(ctl_print_table(out, NULL, 0, NULL), 0);
	fclose(out);
	assert_string_equal(text,
	    "user   sessions  up   down  rate  quota  used\n"
	    "alice  2         100  2000  1.5   daily  300\n"
	    "b??\xc3\xa9   10        -    -     -     -      -\n"
	    "killed count=3 why=a?b\n"
	    "id  client  user  proto  cmd  dest  peer  up  down  rate  age\n");
	free(text);
}

/* ctl_main against fake daemons in a private directory. */
static char test_dir[] = "/tmp/socks5d-ctl-test.XXXXXX";
static char test_out[4096], test_err[4096];

static char *
test_path(const char *name)
{
	static char path[2][128];
	static int i;

	i = !i;
	snprintf(path[i], sizeof(path[i]), "%s/%s", test_dir, name);
	return path[i];
}

/* One connection: read a line; reply if it is want, say so if not, or
 * (reply NULL) stall until killed. */
static pid_t
test_daemon(const char *want, const char *reply)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[2048];
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int fd, c;

	strcpy(sun.sun_path, test_path("ctl.sock"));
	unlink(sun.sun_path);
	assert_true((fd = socket(AF_UNIX, SOCK_STREAM, 0)) != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_true((pid = fork()) != -1);
	if (pid == 0) {
		if ((c = accept(fd, NULL, NULL)) == -1)
			_exit(1);
		while (memchr(buf, '\n', len) == NULL &&
		    len < sizeof(buf) - 1 &&
		    (n = read(c, buf + len, sizeof(buf) - 1 - len)) > 0)
			len += (size_t)n;
		buf[len] = '\0';
		if (reply == NULL)
			pause();
		if (strcmp(buf, want) != 0)
			reply = "end error the test sent another request\n";
		(void)!write(c, reply, strlen(reply));
		_exit(0);
	}
	close(fd);
	return pid;
}

static void
test_capture(int fd, FILE *tmp, int *saved)
{
	fflush(fd == 1 ? stdout : stderr);
	if (tmp != NULL) {
		*saved = dup(fd);
		dup2(fileno(tmp), fd);
	} else {
		dup2(*saved, fd);
		close(*saved);
	}
}

/* Run "ctl ARGS...", stdout and stderr into test_out, test_err. */
static int
test_ctl(const char *arg, ...)
{
	char *argv[16] = { "ctl" };
	FILE *out = tmpfile(), *err = tmpfile();
	int argc = 1, status, s1, s2;
	va_list ap;
	size_t n;

	va_start(ap, arg);
	for (; arg != NULL && argc < 15; arg = va_arg(ap, const char *))
		argv[argc++] = (char *)arg;
	va_end(ap);
	test_capture(1, out, &s1);
	test_capture(2, err, &s2);
	status = ctl_main(argc, argv);
	test_capture(1, NULL, &s1);
	test_capture(2, NULL, &s2);
	rewind(out);
	rewind(err);
	n = fread(test_out, 1, sizeof(test_out) - 1, out);
	test_out[n] = '\0';
	n = fread(test_err, 1, sizeof(test_err) - 1, err);
	test_err[n] = '\0';
	fclose(out);
	fclose(err);
	return status;
}

/* A fake daemon expecting want, and "ctl -s SOCKET" with up to 4 args. */
static void
test_talk(const char *want, const char *reply, int status, const char *out,
    const char *err, const char *arg, ...)
{
	pid_t pid = test_daemon(want, reply);
	const char *a[4] = { arg };
	va_list ap;
	int got;

	va_start(ap, arg);
	for (int i = 1; i < 4 && a[i - 1] != NULL; i++)
		a[i] = va_arg(ap, const char *);
	va_end(ap);
	got = test_ctl("-s", test_path("ctl.sock"), a[0], a[1], a[2], a[3],
	    NULL);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (got != status || strcmp(test_out, out) != 0 ||
	    strstr(test_err, err) == NULL)
		fail_msg("%s: status %d, out \"%s\", err \"%s\"", want, got,
		    test_out, test_err);
}

static void
test_ctl_main(void **state)
{
	FILE *conf;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(test_dir));
	test_talk("v1 ping\n", "end ok\n", 0, "ok\n", "", "ping", NULL);
	test_talk("v1 sessions\n", "session id=1.2 user=b%20b up=5\nend ok\n",
	    0, "{\"ok\":true,\"records\":[{\"type\":\"session\",\"id\":\"1.2\","
	    "\"user\":\"b b\",\"up\":5}]}\n", "", "--json", "sessions", NULL);
	test_talk("v1 kill user bob\n", "end error no such user\n", 1, "",
	    "socks5d ctl: no such user\n", "kill", "--user", "bob", NULL);
	test_talk("v1 kill client 10.0.0.0/8\n", "killed n=2\nend ok\n", 0,
	    "killed n=2\n", "", "kill", "--client", "10.0.0.0/8", NULL);
	test_talk("v1 quota reset bob daily\n", "end ok\n", 0, "ok\n", "",
	    "quota", "reset", "bob", "daily", NULL);
	test_talk("v1 kill 1.2\n", "session a\nend ok\n", 2, "",
	    "malformed response line 1", "kill", "1.2", NULL);
	test_talk("v1 users\n", "user user=a\n", 2, "", "connection closed",
	    "users", NULL);
	/* Nobody there, then usage errors: nothing is sent. */
	assert_int_equal(test_ctl("-s", test_path("none"), "ping", NULL), 2);
	assert_non_null(strstr(test_err, "none: No such file or directory\n"));
	assert_int_equal(test_ctl("-s", "x", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "kill", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "kill", "1.2", "3", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "kill", "--user", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "quota", "reset", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "frob", NULL), 2);
	assert_int_equal(test_ctl("-x", "ping", NULL), 2);
	assert_int_equal(test_ctl("-s", "x", "kill", "1", NULL), 2);
	assert_string_equal(test_err, "socks5d ctl: bad session id (want "
	    "PID.N)\n");
	assert_int_equal(test_ctl("-s", "x", "kill", "--user", "a b", NULL),
	    2);
	assert_int_equal(test_ctl("-h", NULL), 0);
	assert_non_null(strstr(test_out, "usage: socks5d ctl"));

	/* The socket from the config, relative to its directory. */
	assert_non_null(conf = fopen(test_path("c.conf"), "w"));
	fputs("[server]\nlisten = 127.0.0.1:1080\n[control]\n"
	    "socket = ctl.sock ; here\n", conf);
	fclose(conf);
	pid = test_daemon("v1 ping\n", "end ok\n");
	assert_int_equal(test_ctl("-c", test_path("c.conf"), "ping", NULL), 0);
	waitpid(pid, NULL, 0);
	assert_non_null(conf = fopen(test_path("c.conf"), "w"));
	fputs("[server]\nsocket = ctl.sock\n", conf);
	fclose(conf);
	assert_int_equal(test_ctl("-c", test_path("c.conf"), "ping", NULL), 2);
	assert_string_equal(test_err, "socks5d ctl: no control socket: set "
	    "[control] socket or pass -s\n");
	assert_int_equal(test_ctl("-c", test_path("no.conf"), "ping", NULL),
	    2);
	assert_non_null(strstr(test_err, "No such file or directory"));
	unlink(test_path("c.conf"));
}

/* A daemon that never answers costs CTL_TIMEOUT_SEC, not a hang. */
static void
test_ctl_timeout(void **state)
{
	pid_t pid = test_daemon("", NULL);

	(void)state;
	assert_int_equal(test_ctl("-s", test_path("ctl.sock"), "ping", NULL),
	    2);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_non_null(strstr(test_err, "ctl.sock: timed out"));
	unlink(test_path("ctl.sock"));
	rmdir(test_dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commands),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_client_match),
		cmocka_unit_test(test_record_roundtrip),
		cmocka_unit_test(test_record_double),
		cmocka_unit_test(test_record_overflow),
		cmocka_unit_test(test_end_line),
		cmocka_unit_test(test_bad_records),
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_ctl_main),
		cmocka_unit_test(test_ctl_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
