/*
 * "socks5d passwd NAME": read a password (first line of a pipe, or twice
 * from the terminal with echo off) and print the users-file line for it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sodium.h>

#include "socks5d/auth.h"
#include "socks5d/passwd.h"

#define PASSWD_FIELD_MAX	255	/* RFC 1929 length octet */
#define PASSWD_BUF		(PASSWD_FIELD_MAX + 2)	/* + CR + NUL */
#define PASSWD_EXIT_FAIL	1
#define PASSWD_EXIT_USAGE	2

enum passwd_read {
	PASSWD_READ_ERROR = -1,
	PASSWD_READ_TOO_LONG = -2,
	PASSWD_READ_NUL = -3,
};

/* Terminal state to put back if a signal ends us while echo is off. */
static int passwd_tty_fd = -1;
static struct termios passwd_tty_saved;
static volatile sig_atomic_t passwd_tty_dirty;

static const int passwd_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define PASSWD_NSIGNALS	(sizeof(passwd_signals) / sizeof(passwd_signals[0]))

static void
passwd_warnx(const char *why)
{
	fprintf(stderr, "socks5d passwd: %s\n", why);
}

/* Names end up in a colon-separated file and are typed by people: keep
 * them to printable, unambiguous bytes. */
static bool
passwd_name_is_valid(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > PASSWD_FIELD_MAX) {
		passwd_warnx("user name must be 1 to 255 bytes");
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c <= ' ' || c == 0x7f || c == ':') {
			passwd_warnx("user name must not contain ':', "
			    "whitespace or control characters");
			return false;
		}
	}
	return true;
}

/*
 * One byte at a time, so nothing past the first line is consumed and no
 * copy of the password is left in a stdio buffer.
 */
static int
passwd_read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;
	bool too_long = false;
	ssize_t n;
	char c;

	for (;;) {
		n = read(fd, &c, 1);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return PASSWD_READ_ERROR;
		if (n == 0 || c == '\n')
			break;
		if (len < size - 1)
			buf[len++] = c;
		else
			too_long = true;
	}
	sodium_memzero(&c, sizeof(c));
	buf[len] = '\0';
	while (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (too_long || len > PASSWD_FIELD_MAX)
		return PASSWD_READ_TOO_LONG;
	if (memchr(buf, '\0', len) != NULL)
		return PASSWD_READ_NUL;
	return (int)len;
}

static void
passwd_on_signal(int sig)
{
	if (passwd_tty_dirty) {
		tcsetattr(passwd_tty_fd, TCSAFLUSH, &passwd_tty_saved);
		(void)!write(passwd_tty_fd, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void
passwd_signals_catch(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = passwd_on_signal;
	sigfillset(&sa.sa_mask);
	for (size_t i = 0; i < PASSWD_NSIGNALS; i++)
		sigaction(passwd_signals[i], &sa, &old[i]);
}

static void
passwd_signals_restore(const struct sigaction *old)
{
	for (size_t i = 0; i < PASSWD_NSIGNALS; i++)
		sigaction(passwd_signals[i], &old[i], NULL);
}

static int
passwd_prompt(int in, int out, const char *prompt, char *buf, size_t size)
{
	struct sigaction old[PASSWD_NSIGNALS];
	struct termios quiet;
	int n;

	if (tcgetattr(in, &passwd_tty_saved) == -1)
		return PASSWD_READ_ERROR;
	quiet = passwd_tty_saved;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	passwd_tty_fd = in;
	passwd_signals_catch(old);
	passwd_tty_dirty = 1;
	/* Echo goes off before the prompt appears, as getpass() does, so
	 * nothing typed as soon as the prompt shows is echoed. */
	if (tcsetattr(in, TCSAFLUSH, &quiet) == -1) {
		n = PASSWD_READ_ERROR;
	} else {
		(void)!write(out, prompt, strlen(prompt));
		n = passwd_read_line(in, buf, size);
	}
	tcsetattr(in, TCSAFLUSH, &passwd_tty_saved);
	passwd_tty_dirty = 0;
	passwd_signals_restore(old);
	return n;
}

static int
passwd_report(int n)
{
	switch (n) {
	case PASSWD_READ_ERROR:
		fprintf(stderr, "socks5d passwd: reading the password: %s\n",
		    strerror(errno));
		return PASSWD_EXIT_FAIL;
	case PASSWD_READ_TOO_LONG:
		passwd_warnx("password longer than 255 bytes");
		return PASSWD_EXIT_USAGE;
	case PASSWD_READ_NUL:
		passwd_warnx("password contains a NUL byte");
		return PASSWD_EXIT_USAGE;
	case 0:
		passwd_warnx("empty password");
		return PASSWD_EXIT_USAGE;
	default:
		return 0;
	}
}

/* Prefer /dev/tty so the prompts show even with stderr redirected. */
static int
passwd_read_tty(char *pw, char *again)
{
	int fd, in = STDIN_FILENO, out = STDERR_FILENO, status;

	if ((fd = open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC)) != -1)
		in = out = fd;
	status = passwd_report(passwd_prompt(in, out, "Password: ", pw,
	    PASSWD_BUF));
	if (status == 0)
		status = passwd_report(passwd_prompt(in, out, "Again: ",
		    again, PASSWD_BUF));
	if (status == 0 && strcmp(pw, again) != 0) {
		passwd_warnx("passwords do not match");
		status = PASSWD_EXIT_USAGE;
	}
	if (fd != -1)
		close(fd);
	return status;
}

static int
passwd_print(const char *name, const char *pw)
{
	char hash[crypto_pwhash_STRBYTES];

	if (auth_hash_password(pw, hash) == -1) {
		passwd_warnx("hashing failed (out of memory?)");
		return PASSWD_EXIT_FAIL;
	}
	printf("%s:%s\n", name, hash);
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "socks5d passwd: writing: %s\n",
		    strerror(errno));
		return PASSWD_EXIT_FAIL;
	}
	return 0;
}

int
passwd_main(int argc, char **argv)
{
	char pw[PASSWD_BUF], again[PASSWD_BUF];
	int status;

	if (argc != 2) {
		fprintf(stderr, "usage: socks5d passwd NAME\n");
		return PASSWD_EXIT_USAGE;
	}
	if (!passwd_name_is_valid(argv[1]))
		return PASSWD_EXIT_USAGE;
	if (sodium_init() < 0) {
		passwd_warnx("cannot initialise libsodium");
		return PASSWD_EXIT_FAIL;
	}
	if (isatty(STDIN_FILENO))
		status = passwd_read_tty(pw, again);
	else
		status = passwd_report(passwd_read_line(STDIN_FILENO, pw,
		    sizeof(pw)));
	if (status == 0)
		status = passwd_print(argv[1], pw);
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(again, sizeof(again));
	return status;
}
