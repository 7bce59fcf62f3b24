/*
 * The "socks5d passwd NAME" command: read a password and print a users-file
 * line for it.
 */
#ifndef SOCKS5D_PASSWD_H
#define SOCKS5D_PASSWD_H

/* argv[0] is "passwd"; returns the process exit status. */
int passwd_main(int argc, char **argv);

#endif
