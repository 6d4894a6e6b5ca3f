# Writes the man page of one escucha binary (cmake -P, from cmake/EscPackaging.cmake):
# help2man turns --help and --version into NAME/DESCRIPTION/OPTIONS; a CONFIGURATION section
# is added from --help-config (the config table: every key with its default and range), and
# the shared sections from escucha.h2m.
#   cmake -DHELP2MAN=... -DBIN=... -DNAME="short description" -DOUT=page.1 -DSRC=deploy/man -P
# -DINCLUDE=file.h2m (the `escucha` command, which has no config section of its own): that file
# replaces the CONFIGURATION section and the shared sections.
# A sanitizer build must not fail the page on a leak report.
set(ENV{ASAN_OPTIONS} detect_leaks=0)
if(DEFINED INCLUDE)
    configure_file(${INCLUDE} ${OUT}.h2m COPYONLY)
else()
    execute_process(COMMAND ${BIN} --help-config OUTPUT_VARIABLE _cfg RESULT_VARIABLE _rc
                    ERROR_QUIET)
    if(NOT _rc EQUAL 0)
        message(FATAL_ERROR "${BIN} --help-config failed: ${_rc}")
    endif()
    # roff: escape backslashes, protect lines that start with a control character.
    string(REPLACE "\\" "\\e" _cfg "${_cfg}")
    string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" _cfg "${_cfg}")
    file(WRITE ${OUT}.h2m "[CONFIGURATION]\n"
         "Settings of the deployment config file (\\fB\\-\\-config\\fR) this program reads, as\n"
         "printed by \\fB\\-\\-help\\-config\\fR:\n.PP\n.nf\n${_cfg}.fi\n")
    file(READ ${SRC}/escucha.h2m _shared)
    file(APPEND ${OUT}.h2m "\n${_shared}")
endif()
execute_process(COMMAND ${HELP2MAN} --no-info --no-discard-stderr --section=1 --source=escucha
                        --name=${NAME} --include=${OUT}.h2m --output=${OUT} ${BIN}
                RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "help2man ${BIN} failed: ${_rc}")
endif()
