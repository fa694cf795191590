/*
 * Hides the Armv8 cryptographic extension from one program, so that it sees
 * the CPU a Raspberry Pi 4 has: a Cortex-A72 without AES, PMULL, SHA-1 or
 * SHA-2. Every aarch64 CPU model of qemu user-mode emulation has the
 * extension, so scripts/qemu-test.sh loads this into the emulated program
 * (LD_PRELOAD through QEMU_SET_ENV) to check that the engines which need it
 * are then not offered and the rest still agree.
 *
 * The instructions stay executable under qemu; only what the program reads
 * from getauxval(AT_HWCAP), where Rust's feature detection looks on Linux,
 * changes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/auxv.h>

/* AT_HWCAP bits of the Linux arm64 ABI: AES 3, PMULL 4, SHA1 5, SHA2 6,
   SHA3 17, SHA512 21. */
#define CRYPTO_BITS ((1UL << 3) | (1UL << 4) | (1UL << 5) | (1UL << 6) | (1UL << 17) | (1UL << 21))

unsigned long getauxval(unsigned long type)
{
    static unsigned long (*real)(unsigned long);
    if (!real)
        real = (unsigned long (*)(unsigned long))dlsym(RTLD_NEXT, "getauxval");
    unsigned long v = real ? real(type) : 0;
    return type == AT_HWCAP ? v & ~CRYPTO_BITS : v;
}
