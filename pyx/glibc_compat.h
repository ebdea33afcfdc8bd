/* Force-included (gcc -include) into every C file of every extension module by setup.py,
 * on x86-64 glibc only: bind the symbol versions of the oldest glibc the wheel's tag
 * promises, not the build machine's.
 *
 * memcpy: glibc 2.14 gave it a new version (memcpy@GLIBC_2.14, the one that may not
 * overlap); the original memcpy@GLIBC_2.2.5 is still exported by every glibc and is a
 * memmove, which is at least as correct.  With it, nothing in the module needs more than
 * glibc 2.12, manylinux2010 (the IFUNC resolvers that target_clones emits need 2.11).
 */
#ifndef RNNCORE_GLIBC_COMPAT_H
#define RNNCORE_GLIBC_COMPAT_H
__asm__(".symver memcpy,memcpy@GLIBC_2.2.5");
#endif
