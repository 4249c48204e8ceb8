/* What the vector check needs from its platform: write a line, stop with a status. */
#ifndef ACOM_TEST_IO_H
#define ACOM_TEST_IO_H
#define IO_LINE 240  /* room for io_format's line: a 40-character label and 8 numbers, with a newline and NUL */
void io_write(const char *text);  /* a NUL-terminated string, as is */
void io_exit(int status) __attribute__((noreturn));
void io_numbers(const char *label, const long *values, int n);  /* "LABEL N1 N2 ...\n" (io_numbers.c) */
int io_format(char *line, const char *label, const long *values, int n);  /* the same line, no newline; its length */
#endif
