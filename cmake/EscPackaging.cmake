# Install layout and the Debian package (docs/operations.md). Included last from the top-level
# CMakeLists.txt, when every escucha-* target exists.
#
#   cmake --install build [--prefix /usr]   binaries (esc_service, and escucha from cli/),
#                                           systemd units, the example config and secrets
#                                           template in etc/escucha, man pages (when help2man
#                                           is installed), docs, the Prometheus and Grafana
#                                           files
#   cpack --config build/CPackConfig.cmake  escucha_<version>_<arch>.deb, installed under /usr
#                                           with its config in /etc/escucha
#
# The units are written at install time (deploy/systemd/install-units.cmake) so that their
# paths match the prefix installed to; cpack installs to /usr with DESTDIR, whatever prefix the
# build was configured with.
include(GNUInstallDirs)

set(ESC_PKG_SERVICES)
foreach(_svc broker collector classifier aggregator notifier api)
    if(TARGET escucha-${_svc})
        list(APPEND ESC_PKG_SERVICES ${_svc})
    endif()
endforeach()

# --- systemd units, example config, secrets template ---------------------------------------
install(CODE "
set(ESC_UNITS_SRC \"${CMAKE_SOURCE_DIR}/deploy/systemd\")
set(ESC_UNITS_GEN \"${CMAKE_BINARY_DIR}/deploy/systemd\")
set(ESC_UNITS_SERVICES \"${ESC_PKG_SERVICES}\")
set(ESC_EXAMPLE_CONFIG \"${CMAKE_SOURCE_DIR}/examples/escucha.json\")
")
install(SCRIPT ${CMAKE_SOURCE_DIR}/deploy/systemd/install-units.cmake)

# --- documentation and monitoring files ----------------------------------------------------
file(GLOB _esc_docs CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/*.md)
install(FILES README.md ${_esc_docs} DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES deploy/prometheus/prometheus-host.yml deploy/prometheus/alerts.yml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/escucha/prometheus)
install(FILES deploy/grafana/escucha.json DESTINATION ${CMAKE_INSTALL_DATADIR}/escucha/grafana)

# --- man pages from each binary's --help, --version and --help-config (Debian help2man) ------
find_program(ESC_HELP2MAN help2man)
if(ESC_HELP2MAN)
    set(_esc_man_name_broker "forward posts from the collectors to the classifiers")
    set(_esc_man_name_collector "read social media sources and push posts to the broker")
    set(_esc_man_name_classifier "match posts against the teams' topics")
    set(_esc_man_name_aggregator "count classified posts in Redis and detect spikes")
    set(_esc_man_name_notifier "deliver spike alerts and weekly digests")
    set(_esc_man_name_api "escucha read API and web dashboard server")
    set(_esc_man_pages)
    foreach(_svc IN LISTS ESC_PKG_SERVICES)
        set(_page ${CMAKE_BINARY_DIR}/man/escucha-${_svc}.1)
        add_custom_command(
            OUTPUT ${_page}
            COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
            COMMAND ${CMAKE_COMMAND} -DHELP2MAN=${ESC_HELP2MAN}
                    -DBIN=$<TARGET_FILE:escucha-${_svc}> "-DNAME=${_esc_man_name_${_svc}}"
                    -DOUT=${_page} -DSRC=${CMAKE_SOURCE_DIR}/deploy/man
                    -P ${CMAKE_SOURCE_DIR}/deploy/man/help2man.cmake
            DEPENDS escucha-${_svc} ${CMAKE_SOURCE_DIR}/deploy/man/help2man.cmake
                    ${CMAKE_SOURCE_DIR}/deploy/man/escucha.h2m
            COMMENT "man: escucha-${_svc}.1"
            VERBATIM)
        list(APPEND _esc_man_pages ${_page})
    endforeach()
    # escucha (cli/): `escucha up`; no config section, its own sections instead of the shared
    if(TARGET escucha)
        set(_page ${CMAKE_BINARY_DIR}/man/escucha.1)
        add_custom_command(
            OUTPUT ${_page}
            COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
            COMMAND ${CMAKE_COMMAND} -DHELP2MAN=${ESC_HELP2MAN} -DBIN=$<TARGET_FILE:escucha>
                    "-DNAME=run and supervise the whole escucha pipeline on one machine"
                    -DOUT=${_page} -DINCLUDE=${CMAKE_SOURCE_DIR}/cli/escucha.h2m
                    -P ${CMAKE_SOURCE_DIR}/deploy/man/help2man.cmake
            DEPENDS escucha ${CMAKE_SOURCE_DIR}/deploy/man/help2man.cmake
                    ${CMAKE_SOURCE_DIR}/cli/escucha.h2m
            COMMENT "man: escucha.1"
            VERBATIM)
        list(APPEND _esc_man_pages ${_page})
    endif()
    add_custom_target(esc_man_pages ALL DEPENDS ${_esc_man_pages})
    install(FILES ${_esc_man_pages} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
else()
    message(STATUS "help2man not found: no man pages (apt-get install help2man)")
endif()

# --- Debian package --------------------------------------------------------------------------
# Maintainer scripts (deploy/debian/) only run `systemctl daemon-reload` / `try-restart` /
# `stop` when systemd is PID 1, and never delete data. conffiles are generated from what is
# installed in /etc/escucha.
set(_esc_deb_dir ${CMAKE_BINARY_DIR}/deploy/debian)
file(MAKE_DIRECTORY ${_esc_deb_dir})
file(WRITE ${_esc_deb_dir}/conffiles "/etc/escucha/escucha.json.example\n"
                                      "/etc/escucha/escucha.env.example\n")
foreach(_script postinst prerm postrm)
    file(COPY ${CMAKE_SOURCE_DIR}/deploy/debian/${_script} DESTINATION ${_esc_deb_dir}
         FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                          WORLD_READ WORLD_EXECUTE)
endforeach()

execute_process(COMMAND dpkg --print-architecture OUTPUT_VARIABLE _esc_deb_arch
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME escucha)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR escucha)
set(CPACK_PACKAGE_CONTACT "escucha maintainers <escucha@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "self-hosted social listening pipeline")
set(CPACK_PACKAGE_DESCRIPTION
    "escucha counts what public social media says about a team's topics (volume, reach,\n"
    "engagement), alerts when a topic spikes and mails a weekly digest. Separate services pass\n"
    "msgpack messages over ZeroMQ and keep rolling counters in Redis: escucha-collector,\n"
    "escucha-broker, escucha-classifier, escucha-aggregator and escucha-notifier, with one\n"
    "systemd unit each (escucha.target starts them all). `escucha up` runs the whole\n"
    "pipeline on one machine, with a private Redis when none is configured.")
string(JOIN "" CPACK_PACKAGE_DESCRIPTION ${CPACK_PACKAGE_DESCRIPTION})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
if(_esc_deb_arch)
    set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${_esc_deb_arch})
endif()
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The runtime libraries of the build dependencies (Debian 12 names). dpkg-shlibdeps adds the
# exact versions and whatever else the binaries link (cairo, libxml2, sanitizer runtimes).
string(JOIN ", " CPACK_DEBIAN_PACKAGE_DEPENDS libzmq5 libmsgpackc2 libhiredis0.14 libjansson4
            libyajl2 libcurl4 libutf8proc2 libsodium23 libmicrohttpd12)
find_program(ESC_DPKG_SHLIBDEPS dpkg-shlibdeps)
if(ESC_DPKG_SHLIBDEPS)
    set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
endif()
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "redis-server")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${_esc_deb_dir}/conffiles ${_esc_deb_dir}/postinst ${_esc_deb_dir}/prerm
    ${_esc_deb_dir}/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
include(CPack)
