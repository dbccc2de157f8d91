/* The version macros and tt_version(), tt_version_number(). The build passes
 * meson's project version as TT_TEST_PROJECT_VERSION, so these checks fail if
 * the header or the library drifts from project(version:). */
#include <stdio.h>

#include "helpers.h"

START_TEST(version_string_matches_project_version)
{
    ck_assert_str_eq(tt_version(), TT_TEST_PROJECT_VERSION);
}
END_TEST

START_TEST(version_macros_match_project_version)
{
    char from_macros[32];
    snprintf(from_macros, sizeof from_macros, "%d.%d.%d", TT_VERSION_MAJOR, TT_VERSION_MINOR,
             TT_VERSION_PATCH);
    ck_assert_str_eq(from_macros, TT_TEST_PROJECT_VERSION);
}
END_TEST

START_TEST(version_number_matches_macros)
{
    ck_assert_int_eq(tt_version_number(), TT_VERSION_NUMBER);
    ck_assert_int_eq(TT_VERSION_NUMBER,
                     TT_VERSION_MAJOR * 10000 + TT_VERSION_MINOR * 100 + TT_VERSION_PATCH);
}
END_TEST

START_TEST(version_string_is_a_static_string)
{
    /* Two calls return the same storage, which the caller never frees. */
    ck_assert_ptr_eq(tt_version(), tt_version());
}
END_TEST

static Suite *version_suite(void)
{
    Suite *suite = suite_create("version");

    TCase *version = add_test_case(suite, "version");
    tcase_add_test(version, version_string_matches_project_version);
    tcase_add_test(version, version_macros_match_project_version);
    tcase_add_test(version, version_number_matches_macros);
    tcase_add_test(version, version_string_is_a_static_string);

    return suite;
}

int main(void)
{
    return run_suite(version_suite());
}
