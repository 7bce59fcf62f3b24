/*
 * text_trim (text.h): one way to cut the blanks around a config value.
 */
#include <ctype.h>
#include <string.h>

#include "socks5d/text.h"

char *
text_trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}
