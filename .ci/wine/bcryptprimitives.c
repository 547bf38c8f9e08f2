/* The one function of bcryptprimitives.dll that Rust's std (1.78 and later) imports on
 * Windows, for Wine versions that lack the DLL (Debian 12's Wine 8.0): std's programs die at
 * start without it. Implemented with RtlGenRandom (SystemFunction036), which Wine has. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
