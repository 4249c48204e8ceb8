/* What the vector check needs from its platform: write a line, stop with a status. */
#ifndef ACOM_TEST_IO_H
#define ACOM_TEST_IO_H
void io_write(const char *text);  /* a NUL-terminated string, as is */
void io_exit(int status) __attribute__((noreturn));
void io_numbers(const char *label, const long *values, int n);  /* "LABEL N1 N2 ...\n" (io_numbers.c) */
#endif
