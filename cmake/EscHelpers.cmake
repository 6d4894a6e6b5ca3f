# esc_service(NAME SOURCES ...): one executable escucha-NAME linked with esc_common.
function(esc_service name)
    cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
    add_executable(escucha-${name} ${A_SOURCES})
    target_link_libraries(escucha-${name} PRIVATE esc_common ${A_LIBS})
    install(TARGETS escucha-${name} RUNTIME DESTINATION bin)
endfunction()

# esc_test(NAME SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT s]): a cmocka test program + ctest entry.
function(esc_test name)
    cmake_parse_arguments(A "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
    if(NOT ESC_TESTS)
        # Tests off: still declare the target (never built, not in `all`), so that a
        # CMakeLists.txt may set include directories or definitions on it unconditionally.
        add_executable(${name} EXCLUDE_FROM_ALL ${A_SOURCES})
        return()
    endif()
    if(NOT A_TIMEOUT)
        set(A_TIMEOUT 60)
    endif()
    if(NOT A_LABELS)
        set(A_LABELS unit)
    endif()
    add_executable(${name} ${A_SOURCES})
    target_link_libraries(${name} PRIVATE esc_common PkgConfig::CMOCKA ${A_LIBS})
    add_test(NAME ${name} COMMAND ${name} WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES TIMEOUT ${A_TIMEOUT} LABELS "${A_LABELS}")
endfunction()
