/* JVMTI agent for the Android bridge tests: JNI FindClass off the thread that created the JVM.
 *
 * On Android, FindClass on a thread that Python started sees only the system class loader, so the
 * APK's classes (ExecuTorch, the app's own Java) are not found there (python-for-android #2242).
 * This agent replaces FindClass in the JNI function table: every lookup made off the owner thread
 * (the one that loaded the agent, i.e. created the JVM) is written to the log file named in the
 * agent's options, and lookups of classes outside the JDK then fail with NoClassDefFoundError, as
 * they would on a phone. pyjnius converts a Python list to a Java object array with such a lookup,
 * so those conversions are caught too. */
#include <jvmti.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_t owner;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static jniNativeInterface *original;

static int in_jdk(const char *name) {
  while (*name == '[') name++;
  /* an array of a primitive type ("[B", "[[I"): defined by the boot class loader, found from any thread */
  if (name[0] && name[1] == '\0' && strchr("BCDFIJSZ", name[0])) return 1;
  if (*name == 'L') name++;
  return !strncmp(name, "java/", 5) || !strncmp(name, "javax/", 6) || !strncmp(name, "jdk/", 4) ||
         !strncmp(name, "sun/", 4);
}

static jclass JNICALL checked_find_class(JNIEnv *env, const char *name) {
  if (!pthread_equal(pthread_self(), owner)) {
    pthread_mutex_lock(&log_lock);
    fprintf(log_file, "%ld %s\n", (long)syscall(SYS_gettid), name);
    fflush(log_file);
    pthread_mutex_unlock(&log_lock);
    if (!in_jdk(name)) {
      jclass error = original->FindClass(env, "java/lang/NoClassDefFoundError");
      original->ThrowNew(env, error, name);
      return NULL;
    }
  }
  return original->FindClass(env, name);
}

static void JNICALL vm_init(jvmtiEnv *jvmti, JNIEnv *env, jthread thread) {
  jniNativeInterface *table;
  if ((*jvmti)->GetJNIFunctionTable(jvmti, &table) != JVMTI_ERROR_NONE) abort();
  original = malloc(sizeof *original);
  memcpy(original, table, sizeof *original);
  table->FindClass = checked_find_class;
  if ((*jvmti)->SetJNIFunctionTable(jvmti, table) != JVMTI_ERROR_NONE) abort();
}

JNIEXPORT jint JNICALL Agent_OnLoad(JavaVM *vm, char *options, void *reserved) {
  jvmtiEnv *jvmti;
  jvmtiEventCallbacks callbacks;
  owner = pthread_self();
  log_file = fopen(options && *options ? options : "/dev/stderr", "a");
  if (!log_file || (*vm)->GetEnv(vm, (void **)&jvmti, JVMTI_VERSION_1_2) != JNI_OK) return JNI_ERR;
  memset(&callbacks, 0, sizeof callbacks);
  callbacks.VMInit = vm_init;
  (*jvmti)->SetEventCallbacks(jvmti, &callbacks, sizeof callbacks);
  (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, JVMTI_EVENT_VM_INIT, NULL);
  return JNI_OK;
}
