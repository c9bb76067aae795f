/* A stand-in for Windows' bcryptprimitives.dll, for Wine releases older than 8.13 that lack it.
 *
 * Rust's standard library (1.78 and later) gets its random numbers from ProcessPrng in
 * bcryptprimitives.dll; a program that cannot import it does not start (under Wine 8.0 it exits
 * with status 53). This DLL exports ProcessPrng and answers it with RtlGenRandom
 * (SystemFunction036 in advapi32), which every Wine release has. `cargo xtask conformance
 * --target windows` builds it with mingw-w64 and copies it into the Wine prefix's system32.
 * It is never used on real Windows.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* Fills `data` with `length` random bytes; RtlGenRandom takes at most ULONG bytes at a time. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
