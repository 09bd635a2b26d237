# packaging/CPackConfig.cmake - man page, shell completion, example config,
# systemd units and the Debian package (included by the top-level
# CMakeLists.txt after the diskvault target exists).
#
#   cmake --build BUILD && (cd BUILD && cpack -G DEB)   -> diskvault_VERSION_ARCH.deb
#
# The man page is generated from the built binary's --help texts
# (packaging/gen-man.sh), so it is rebuilt whenever the binary is.

set(DV_PKG_DIR ${CMAKE_CURRENT_LIST_DIR})
set(DV_MAN ${CMAKE_BINARY_DIR}/diskvault.1)
add_custom_command(OUTPUT ${DV_MAN} ${DV_MAN}.gz
  COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=0
          bash ${DV_PKG_DIR}/gen-man.sh $<TARGET_FILE:diskvault> ${DV_MAN} ${CMAKE_SOURCE_DIR}/docs/exit-codes.md
  COMMAND gzip -9 -n -c ${DV_MAN} > ${DV_MAN}.gz
  DEPENDS diskvault ${DV_PKG_DIR}/gen-man.sh ${DV_PKG_DIR}/man/header.roff ${DV_PKG_DIR}/man/footer.roff
  COMMENT "Generating diskvault.1 from the --help texts"
  VERBATIM)
add_custom_target(diskvault-man ALL DEPENDS ${DV_MAN} ${DV_MAN}.gz)

include(GNUInstallDirs)
install(FILES ${DV_MAN}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${DV_PKG_DIR}/bash-completion/diskvault DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)
install(FILES ${DV_PKG_DIR}/systemd/diskvault-backup.service ${DV_PKG_DIR}/systemd/diskvault-backup.timer
  DESTINATION lib/systemd/system)
install(FILES ${DV_PKG_DIR}/cron/diskvault DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples/cron.d)
install(FILES ${DV_PKG_DIR}/diskvault.conf.example DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)
foreach(doc README.md docs/configuration.md docs/exit-codes.md docs/s3.md)
  if(EXISTS ${CMAKE_SOURCE_DIR}/${doc})
    install(FILES ${CMAKE_SOURCE_DIR}/${doc} DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
endforeach()
# Shipped data (e.g. the EC2 instance catalog) when the tree has it.
if(IS_DIRECTORY ${CMAKE_SOURCE_DIR}/data)
  install(DIRECTORY ${CMAKE_SOURCE_DIR}/data/ DESTINATION ${CMAKE_INSTALL_DATADIR}/diskvault)
endif()
# The example under /etc/diskvault when installing to /usr (the Debian
# package), else under PREFIX/etc/diskvault. Decided at install time, when
# the prefix is known (cpack installs with prefix /usr into its staging
# directory through DESTDIR).
install(CODE "
  if(CMAKE_INSTALL_PREFIX STREQUAL \"/usr\")
    set(dv_etc \"/etc/diskvault\")
  else()
    set(dv_etc \"\${CMAKE_INSTALL_PREFIX}/etc/diskvault\")
  endif()
  file(INSTALL DESTINATION \"\${dv_etc}\" TYPE FILE FILES \"${DV_PKG_DIR}/diskvault.conf.example\")
")

# ---- Debian package ------------------------------------------------------
set(CPACK_PACKAGE_NAME diskvault)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "diskvault")
set(CPACK_PACKAGE_CONTACT "diskvault maintainers <maintainers@diskvault.invalid>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "image whole disks into a deduplicated, compressed repository")
set(CPACK_PACKAGE_DESCRIPTION "diskvault reads block devices or disk images once, sequentially, and stores them
as content-defined, deduplicated, zstd-compressed chunks in a repository on a
local directory or S3. Only the blocks ext2/3/4 and FAT filesystems use are read, and
restores are checked to be bit-exact. Includes a nightly systemd timer and a
cron example.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "e2fsprogs, zstd, tar")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${DV_PKG_DIR}/debian/postinst ${DV_PKG_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# Only what install() put under the prefix: no build-tree junk.
set(CPACK_STRIP_FILES ON)
set(CPACK_SOURCE_IGNORE_FILES "/build.*/;/\\\\.git/")
include(CPack)
