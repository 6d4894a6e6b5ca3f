# Install-time step (run by `cmake --install` and by cpack through cmake/EscPackaging.cmake):
# writes the systemd units and installs the example config and secrets template. It runs at
# install time, not at configure time, because the paths written into the units depend on the
# prefix actually installed to: cpack installs with /usr whatever the build was configured with.
#
# Expects ESC_UNITS_SRC (deploy/systemd), ESC_UNITS_GEN (a scratch folder in the build tree),
# ESC_UNITS_SERVICES (services that have a binary) and ESC_EXAMPLE_CONFIG; CMAKE_INSTALL_PREFIX
# and DESTDIR are cmake --install's own.

set(_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" _prefix "${_prefix}")
# The GNU rule (GNUInstallDirs): configuration under /usr is in /etc, else in <prefix>/etc.
if(_prefix STREQUAL "/usr" OR _prefix STREQUAL "")
    set(ESC_CONFDIR "/etc/escucha")
else()
    set(ESC_CONFDIR "${_prefix}/etc/escucha")
endif()
set(ESC_BINDIR "${_prefix}/bin")
set(ESC_DOCDIR "${_prefix}/share/doc/escucha")
set(ESC_DATADIR "${_prefix}/share/escucha")
set(_unitdir "${_prefix}/lib/systemd/system")
# One scratch folder per destination: two installs from one build tree at once (cpack and a
# test installing to a temporary prefix) must not write each other's units.
string(MD5 _dest "$ENV{DESTDIR}|${_prefix}")
set(ESC_UNITS_GEN "${ESC_UNITS_GEN}/${_dest}")

set(_units)
set(ESC_TARGET_WANTS)
foreach(_svc IN LISTS ESC_UNITS_SERVICES)
    if(_svc STREQUAL "classifier")
        set(_unit "escucha-classifier@.service")
        list(APPEND ESC_TARGET_WANTS "escucha-classifier@9110.service")
    else()
        set(_unit "escucha-${_svc}.service")
        list(APPEND ESC_TARGET_WANTS "${_unit}")
    endif()
    configure_file("${ESC_UNITS_SRC}/${_unit}.in" "${ESC_UNITS_GEN}/${_unit}" @ONLY)
    list(APPEND _units "${ESC_UNITS_GEN}/${_unit}")
endforeach()
list(JOIN ESC_TARGET_WANTS " " ESC_TARGET_WANTS)
configure_file("${ESC_UNITS_SRC}/escucha.target.in" "${ESC_UNITS_GEN}/escucha.target" @ONLY)
list(APPEND _units "${ESC_UNITS_GEN}/escucha.target")

file(INSTALL DESTINATION "${_unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ FILES ${_units})
file(INSTALL DESTINATION "${ESC_CONFDIR}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${ESC_EXAMPLE_CONFIG}" RENAME escucha.json.example)
file(INSTALL DESTINATION "${ESC_CONFDIR}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${ESC_UNITS_SRC}/escucha.env.example")
