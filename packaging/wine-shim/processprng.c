/* bcryptprimitives.dll for Wine 8.0, which lacks it: exports ProcessPrng, the call Rust's
 * standard library (1.78 and later) makes for random bytes on Windows, and answers it from
 * bcrypt.dll's system RNG, which Wine has. Only the tests that run zedops.exe under Wine
 * build it (scripts/check-cross); real Windows ships its own bcryptprimitives.dll. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    /* BCryptGenRandom takes a ULONG length: fill larger buffers in pieces. */
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance; (void)reason; (void)reserved;
    return TRUE;
}
