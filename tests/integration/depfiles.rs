//! Depfiles are restored as the compiler would have written them for *this* invocation.

use crate::hits::sample;
use crate::support::{run_ok, TestEnv};
use crate::with_compilers;

with_compilers!(md_mf_mt_depfile_is_byte_identical_and_retargeted, |env, cc| {
    sample(env);
    let build = |env: &TestEnv, target: &str| {
        env.rcc_ok(&[cc, "-c", "src/util.c", "-o", "util.o", "-Iinclude", "-MD", "-MF", "deps/util.d", "-MT", target]);
    };
    // The depfile a plain compile writes for the same target, to plain.d.
    let plain = |env: &TestEnv, target: &str| {
        let args = ["-c", "src/util.c", "-o", "util.o", "-Iinclude", "-MD", "-MF", "plain.d", "-MT", target];
        run_ok(env.command(cc).args(args));
        env.read("plain.d")
    };
    std::fs::create_dir_all(env.proj.join("deps")).unwrap();
    build(env, "util.o");
    let first = env.read("deps/util.d");
    assert_eq!(first, plain(env, "util.o"), "a miss leaves the compiler's own depfile");
    std::fs::remove_file(env.proj.join("deps/util.d")).unwrap();
    build(env, "util.o");
    assert_eq!(env.hits(), 1, "{}", env.log());
    assert_eq!(env.read("deps/util.d"), first, "identical rebuild: byte-identical depfile");
    // Another target name: a hit whose depfile names the new target.
    build(env, "obj/other.o");
    assert_eq!(env.hits(), 2, "-MT does not enter the key\n{}", env.log());
    assert_eq!(env.read("deps/util.d"), plain(env, "obj/other.o"), "depfile names this invocation's target");
});

/// The depfile `depfile` a plain compile with the same arguments writes (rcc's own one moved out of the way
/// and put back).
fn plain_depfile(env: &TestEnv, args: &[&str], depfile: &str) -> Vec<u8> {
    let path = env.proj.join(depfile);
    let aside = env.proj.join(format!("{depfile}.rcc"));
    std::fs::rename(&path, &aside).expect("moving rcc's depfile aside");
    run_ok(env.command(args[0]).args(&args[1..]));
    let plain = env.read(depfile);
    std::fs::rename(&aside, &path).expect("putting rcc's depfile back");
    plain
}

with_compilers!(mmd_mp_depfiles_go_through_preprocessor_mode, |env, cc| {
    sample(env);
    let args = [cc, "-c", "src/main.c", "-o", "main.o", "-Iinclude", "-MMD", "-MP"];
    env.rcc_ok(&args);
    let dep = env.read("main.d");
    assert!(!String::from_utf8_lossy(&dep).contains("/usr/include"), "-MMD leaves system headers out");
    assert_eq!(dep, plain_depfile(env, &args, "main.d"), "the miss's depfile is the compiler's own");
    std::fs::remove_file(env.proj.join("main.d")).unwrap();
    // The preprocessor run of the miss taught direct mode the full header list: a direct hit.
    env.rcc_ok(&args);
    assert_eq!(env.counter("hits_direct"), 1, "{}", env.log());
    assert_eq!(env.read("main.d"), dep);
    // A comment-only change of the source: the direct key changes, the preprocessed text does not.
    // (On the same line: an added line would shift the preprocessor's line markers.)
    let source = String::from_utf8_lossy(&env.read("src/main.c")).replacen("\n", " /* a comment */\n", 1);
    env.write("src/main.c", &source);
    env.rcc_ok(&args);
    assert_eq!(env.counter("hits_preprocessor"), 1, "{}", env.log());
});

with_compilers!(kernel_style_wp_md_depfile, |env, cc| {
    sample(env);
    let args = [cc, "-c", "src/util.c", "-o", "util.o", "-Iinclude", "-Wp,-MD,.util.o.d"];
    env.rcc_ok(&args);
    let dep = env.read(".util.o.d");
    assert_eq!(dep, plain_depfile(env, &args, ".util.o.d"), "the miss's depfile is the compiler's own");
    std::fs::remove_file(env.proj.join(".util.o.d")).unwrap();
    env.rcc_ok(&args);
    assert_eq!(env.hits(), 1, "{}", env.log());
    assert_eq!(env.read(".util.o.d"), dep);
});
