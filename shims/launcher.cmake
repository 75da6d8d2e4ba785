# Initial cache for CMake: cmake -C shims/launcher.cmake -S . -B build
set(CMAKE_C_COMPILER_LAUNCHER rcc CACHE STRING "compiler cache")
set(CMAKE_CXX_COMPILER_LAUNCHER rcc CACHE STRING "compiler cache")
