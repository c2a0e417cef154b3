/* Internal: G.711 lookup tables generated from audioop (see native/tools/gen_g711_tables.py). */
#ifndef CVG_G711_TABLES_H
#define CVG_G711_TABLES_H
#include <stdint.h>

#if defined(__GNUC__)
#define CVG_HIDDEN __attribute__((visibility("hidden")))
#else
#define CVG_HIDDEN
#endif

extern CVG_HIDDEN const uint8_t cvg_ulaw_enc_tab[16384];
extern CVG_HIDDEN const uint8_t cvg_alaw_enc_tab[8192];
extern CVG_HIDDEN const int16_t cvg_ulaw_dec_tab[256];
extern CVG_HIDDEN const int16_t cvg_alaw_dec_tab[256];

#endif
