#define ESC_LOG_MODULE "registry_test"
/* Unit tests of the sink registry: the shipped list (webhook, slack, teams, email) passes its
 * check, and the check catches a plugin without a callback or with a name already taken. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sinks/sink.h"

static int
s_init(struct ntf_sink *ins)
{
    return 0;
}

static esc_rc
s_prepare(struct ntf_sink *ins, const struct ntf_notice *n, struct ntf_req *req)
{
    req->kind = NTF_REQ_DONE;
    req->done_rc = ESC_OK;
    return ESC_OK;
}

static void
s_exit(struct ntf_sink *ins)
{
}

static const struct ntf_sink_plugin s_good = {
    .name = "good", .description = "d", .init = s_init, .prepare = s_prepare, .exit = s_exit,
};
static const struct ntf_sink_plugin s_twin = {
    .name = "good", .description = "d", .init = s_init, .prepare = s_prepare, .exit = s_exit,
};
static const struct ntf_sink_plugin s_no_prepare = {
    .name = "broken", .description = "d", .init = s_init, .exit = s_exit,
};

static void
test_registry_check_passes(void **state)
{
    const struct ntf_sink_plugin *const *list = ntf_sink_plugins();
    const struct ntf_sink_plugin *webhook = ntf_sink_plugin_find("webhook");

    assert_int_equal(ntf_sink_registry_check(), 0);
    assert_non_null(list[0]);
    assert_non_null(webhook);
    assert_string_equal(webhook->name, "webhook");
    assert_non_null(ntf_sink_plugin_find("slack"));
    assert_non_null(ntf_sink_plugin_find("teams"));
    assert_non_null(ntf_sink_plugin_find("email"));
    assert_null(ntf_sink_plugin_find("carrier-pigeon"));
}

static void
test_registry_rejects_missing_callback(void **state)
{
    const struct ntf_sink_plugin *const list[] = { &s_good, &s_no_prepare, NULL };

    assert_int_equal(ntf_sink_list_check(list), -1);
}

static void
test_registry_rejects_duplicate_name(void **state)
{
    const struct ntf_sink_plugin *const ok[] = { &s_good, NULL };
    const struct ntf_sink_plugin *const dup[] = { &s_good, &s_twin, NULL };

    assert_int_equal(ntf_sink_list_check(ok), 0);
    assert_int_equal(ntf_sink_list_check(dup), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_check_passes),
        cmocka_unit_test(test_registry_rejects_missing_callback),
        cmocka_unit_test(test_registry_rejects_duplicate_name),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
