/*
 * Small text helpers the config parsers share.
 */
#ifndef SOCKS5D_TEXT_H
#define SOCKS5D_TEXT_H

/* s without its leading and trailing white space (cut in place). */
char *text_trim(char *s);

#endif
