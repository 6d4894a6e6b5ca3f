#define ESC_LOG_MODULE "test"
/* Tests of the source plugin registry: the compiled-in table passes the check, lookups work,
 * and the check catches a plugin without a callback and two plugins with the same name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "col_source.h"

static void
test_registry_builtin_table_passes(void **state)
{
    const struct col_source_plugin *const *list = col_source_plugins();
    struct esc_error err;
    size_t i;

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(col_source_registry_check(&err), 0);
    assert_non_null(list[0]);
    for (i = 0; list[i] != NULL; i++) {
        assert_ptr_equal(col_source_plugin_find(list[i]->name), list[i]);
    }
    assert_ptr_equal(col_source_plugin_find("jsonl"), &src_jsonl_plugin);
    assert_null(col_source_plugin_find("no-such-plugin"));
}

static void
test_registry_rejects_missing_callback(void **state)
{
    struct col_source_plugin broken = src_jsonl_plugin;
    const struct col_source_plugin *const list[] = { &broken, NULL };
    struct esc_error err;

    (void)state;
    broken.name = "broken";
    broken.poll = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(col_source_registry_check_list(list, &err), -1);
    assert_non_null(strstr(err.text, "'broken'"));
    assert_non_null(strstr(err.text, "poll"));
}

static void
test_registry_rejects_missing_cfg_map(void **state)
{
    struct col_source_plugin broken = src_jsonl_plugin;
    const struct col_source_plugin *const list[] = { &broken, NULL };
    struct esc_error err;

    (void)state;
    broken.cfg_map = NULL;
    memset(&err, 0, sizeof(err));
    assert_int_equal(col_source_registry_check_list(list, &err), -1);
    assert_non_null(strstr(err.text, "cfg_map"));
}

static void
test_registry_rejects_duplicate_name(void **state)
{
    struct col_source_plugin twin = src_jsonl_plugin;
    const struct col_source_plugin *const list[] = { &src_jsonl_plugin, &twin, NULL };
    struct esc_error err;

    (void)state;
    memset(&err, 0, sizeof(err));
    assert_int_equal(col_source_registry_check_list(list, &err), -1);
    assert_non_null(strstr(err.text, "'jsonl'"));
    assert_non_null(strstr(err.text, "twice"));
}

static void
test_registry_rejects_unnamed_plugin(void **state)
{
    struct col_source_plugin anon = src_jsonl_plugin;
    const struct col_source_plugin *const list[] = { &anon, NULL };
    struct esc_error err;

    (void)state;
    anon.name = "";
    memset(&err, 0, sizeof(err));
    assert_int_equal(col_source_registry_check_list(list, &err), -1);
    assert_non_null(strstr(err.text, "no name"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_builtin_table_passes),
        cmocka_unit_test(test_registry_rejects_missing_callback),
        cmocka_unit_test(test_registry_rejects_missing_cfg_map),
        cmocka_unit_test(test_registry_rejects_duplicate_name),
        cmocka_unit_test(test_registry_rejects_unnamed_plugin),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
